"""PatchGAN discriminator (pix2pix, Isola et al. 2017) and the discriminator factory.

The PatchGAN classifies every receptive-field patch of the image instead of the
whole image: `num_layers` k4 s2 convolutions (LeakyReLU 0.2, BatchNorm after
the first), then a k4 s1 convolution to 8x the base features (BN, LeakyReLU)
and a k4 s1 convolution to one logit per patch. With `num_layers` 3 this is
pix2pix's 70x70 PatchGAN (a 256x256 image gives 30x30 patches); the logit map
has side `image_size / 2**num_layers - 2`.

`make_discriminator` picks it or the DCGAN discriminator by name
(`config.model.discriminator`); both return (logits, features dict with
"penultimate"), DCGAN logits (N,), PatchGAN logits (N, P).
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from ganad_jax.models import dcgan

DISCRIMINATORS = ("dcgan", "patch")


def num_patches(image_size: int, num_layers: int) -> int:
  """Number of logits per image of side `image_size`; ValueError if it would be < 1."""
  side = image_size // 2**num_layers - 2
  if image_size & (image_size - 1) or side < 1:
    raise ValueError(
        f"The patch discriminator with {num_layers} stride-2 layers "
        f"(config.model.patch_layers) needs a power-of-two image_size >= {2**(num_layers + 2)}; "
        f"got image_size={image_size}. Use fewer patch_layers or a larger data.image_size.")
  return side * side


class PatchDiscriminator(nn.Module):
  """Image (N, H, W, C) -> (logits (N, P), features dict), P patches per image.

  Attributes:
    base_features: channels of the first convolution; doubled per layer up to 8x.
    num_layers: stride-2 convolutions (3 = pix2pix's 70x70 receptive field).
    dtype: computation dtype (parameters stay float32).
  """
  base_features: int = 64
  num_layers: int = 3
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = True):
    if x.shape[1] != x.shape[2]:
      raise ValueError(f"The patch discriminator needs square images; got {x.shape[1:]}.")
    num_patches(x.shape[1], self.num_layers)
    features = {}
    x = x.astype(self.dtype)

    def conv(f, stride, name, use_bias):
      # pix2pix: bias only where no BatchNorm follows.
      return nn.Conv(f, (4, 4), strides=(stride, stride), padding=((1, 1), (1, 1)),
                     use_bias=use_bias, kernel_init=dcgan.conv_init, dtype=self.dtype, name=name)

    x = nn.leaky_relu(conv(self.base_features, 2, "conv0", True)(x), 0.2)
    features["block0"] = x
    for i in range(1, self.num_layers):
      x = conv(self.base_features * min(2**i, 8), 2, f"conv{i}", False)(x)
      x = nn.leaky_relu(dcgan.batch_norm(train, f"bn{i}")(x), 0.2)
      features[f"block{i}"] = x
    x = conv(self.base_features * min(2**self.num_layers, 8), 1, "conv_pen", False)(x)
    x = nn.leaky_relu(dcgan.batch_norm(train, "bn_pen")(x), 0.2)
    features["penultimate"] = x
    x = conv(1, 1, "conv_out", True)(x)
    return x.reshape(x.shape[0], -1).astype(jnp.float32), features


def make_discriminator(kind: str, base_features: int, num_layers: int = 3,
                       dtype: Any = jnp.float32) -> nn.Module:
  """The image discriminator `kind` ("dcgan" or "patch", `config.model.discriminator`)."""
  if kind == "dcgan":
    return dcgan.Discriminator(base_features, dtype)
  if kind == "patch":
    return PatchDiscriminator(base_features, num_layers, dtype)
  raise ValueError(f"Unknown discriminator {kind!r} (config.model.discriminator); "
                   f"choose one of {', '.join(DISCRIMINATORS)}.")
