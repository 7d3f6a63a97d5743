"""DCGAN encoder, decoder and discriminator for any power-of-two image size >= 16.

Shapes follow the GANomaly / DCGAN reference nets: the encoder halves the image
with k4 s2 convolutions down to 4x4 and ends in a k4 valid convolution to
`out_features` (the latent size, or 1 logit for a discriminator); the decoder
mirrors it. Init is N(0, 0.02) for kernels and N(1, 0.02) for BatchNorm scales.
"""

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

conv_init = nn.initializers.normal(stddev=0.02)


def bn_scale_init(key, shape, dtype=jnp.float32):
  return 1.0 + 0.02 * jax.random.normal(key, shape, dtype)


def num_halvings(image_size: int) -> int:
  """Number of stride-2 stages between `image_size` and the 4x4 bottleneck."""
  if image_size < 16 or image_size & (image_size - 1):
    raise ValueError(
        f"image_size={image_size} is not supported: the DCGAN nets need a power "
        "of two >= 16 (set data.image_size; the loaders resize any input).")
  return int(math.log2(image_size)) - 2


def batch_norm(train: bool, name: str | None = None) -> nn.BatchNorm:
  # momentum 0.9 in Flax = PyTorch's momentum 0.1, the references' default.
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                      scale_init=bn_scale_init, name=name)


class Encoder(nn.Module):
  """Image (N, H, W, C) -> (N, out_features), plus named intermediate features.

  Attributes:
    out_features: size of the output (nz for an encoder, 1 for a discriminator).
    base_features: channels of the first convolution; doubled at every halving.
    dtype: computation dtype (parameters stay float32).
    norm: "batch" (BatchNorm, the references') or "layer" (LayerNorm over (H, W, C)
      per sample with per-channel scale and offset, eps 1e-5: a WGAN-GP critic,
      whose gradient penalty is per sample, `methods.wgan_gp`).
  """
  out_features: int
  base_features: int = 64
  dtype: Any = jnp.float32
  norm: str = "batch"

  @nn.compact
  def __call__(self, x, train: bool = True):
    features = {}
    stages = num_halvings(x.shape[1])
    x = x.astype(self.dtype)
    conv = lambda f, name: nn.Conv(f, (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)),
                                   use_bias=False, kernel_init=conv_init,
                                   dtype=self.dtype, name=name)
    x = nn.leaky_relu(conv(self.base_features, "conv0")(x), 0.2)
    features["block0"] = x
    for i in range(1, stages):
      x = conv(self.base_features * 2**i, f"conv{i}")(x)
      if self.norm == "layer":
        x = nn.LayerNorm(epsilon=1e-5, reduction_axes=(-3, -2, -1), feature_axes=-1,
                         dtype=self.dtype, name=f"ln{i}")(x)
      else:
        x = batch_norm(train, f"bn{i}")(x)
      x = nn.leaky_relu(x, 0.2)
      features[f"block{i}"] = x
    # `penultimate` is the 4x4 map before the last conv: GANomaly's feature-matching layer.
    features["penultimate"] = x
    x = nn.Conv(self.out_features, (4, 4), padding="VALID", use_bias=False,
                kernel_init=conv_init, dtype=self.dtype, name="conv_out")(x)
    return x.reshape(x.shape[0], -1).astype(jnp.float32), features


class Decoder(nn.Module):
  """Latent (N, nz) -> image (N, image_size, image_size, channels) in [-1, 1].

  Attributes:
    image_size: output height and width (power of two >= 16).
    channels: output channels.
    base_features: channels of the last hidden layer; doubled towards the latent.
    dtype: computation dtype.
  """
  image_size: int
  channels: int
  base_features: int = 64
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z, train: bool = True):
    stages = num_halvings(self.image_size)
    x = z.reshape(z.shape[0], 1, 1, -1).astype(self.dtype)
    features = self.base_features * 2**(stages - 1)
    x = nn.ConvTranspose(features, (4, 4), padding="VALID", use_bias=False,
                         kernel_init=conv_init, dtype=self.dtype, name="convt0")(x)
    x = nn.relu(batch_norm(train, "bn0")(x))
    for i in range(1, stages):
      features //= 2
      x = nn.ConvTranspose(features, (4, 4), strides=(2, 2), padding="SAME",
                           use_bias=False, kernel_init=conv_init, dtype=self.dtype,
                           name=f"convt{i}")(x)
      x = nn.relu(batch_norm(train, f"bn{i}")(x))
    x = nn.ConvTranspose(self.channels, (4, 4), strides=(2, 2), padding="SAME",
                         use_bias=False, kernel_init=conv_init, dtype=self.dtype,
                         name="convt_out")(x)
    return jnp.tanh(x.astype(jnp.float32))


class Discriminator(nn.Module):
  """DCGAN discriminator: image -> (logit (N,), features dict); `norm` as `Encoder`'s."""
  base_features: int = 64
  dtype: Any = jnp.float32
  norm: str = "batch"

  @nn.compact
  def __call__(self, x, train: bool = True):
    logit, features = Encoder(1, self.base_features, self.dtype, self.norm,
                              name="encoder")(x, train)
    return logit[:, 0], features
