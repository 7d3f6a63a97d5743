"""The BiGAN / EGBAD nets (Donahue et al. 2017; Zenati et al. 2018): joint D(x, z), and the
reference's own MNIST G and E.

`JointDiscriminator` is D(x, z): an x branch, a z branch (one dense layer), the
concatenated branches through one joint dense layer ("penultimate", the layer
of EGBAD's feature-matching score) to one logit. Its x branch is either
  - "dcgan": the DCGAN discriminator's conv stack (k4 s2 convs without bias,
    BatchNorm from the second on) down to 4x4, or dense layers for vectors;
  - "zenati": EGBAD's MNIST x branch (houssamzenati/Efficient-GAN-Anomaly-
    Detection, bigan/mnist_utilities.py): two k4 s2 'same' convs of 64 with
    bias, TF-default BatchNorm on the second.
Every LeakyReLU has slope `negative_slope` (EGBAD's D: 0.1); `dropout_rate` > 0
adds dropout after every hidden layer of D as EGBAD's (0.5), drawn from the
"dropout" rng in train mode.

`ZenatiEncoder` and `ZenatiGenerator` are that file's MNIST E and G, for any
square image size divisible by 4 (28 there: 7x7 bottleneck; 32 here: 8x8):
  E: conv3x3 32, conv3x3/2 64 + BN, conv3x3/2 128 + BN (LeakyReLU 0.1), dense nz;
  G: dense 1024 + BN, dense (size/4)^2*128 + BN (ReLU), convT4/2 64 + BN + ReLU,
     convT4/2 channels, tanh.
Their layers have biases, kernels N(0, 0.02), biases 0, and TF's BatchNorm
(momentum 0.99, epsilon 1e-3, scale 1): `tf_batch_norm`.
"""

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from ganad_jax.models import dcgan

X_BRANCHES = ("dcgan", "zenati")


def tf_batch_norm(train: bool, name: str | None = None) -> nn.BatchNorm:
  """`tf.layers.batch_normalization`'s defaults: momentum 0.99, epsilon 1e-3, scale 1."""
  return nn.BatchNorm(use_running_average=not train, momentum=0.99, epsilon=1e-3, name=name)


def _dense(features: int, name: str, dtype) -> nn.Dense:
  return nn.Dense(features, kernel_init=dcgan.conv_init, dtype=dtype, name=name)


def _check_image(x, what: str):
  if x.ndim != 4 or x.shape[1] != x.shape[2] or x.shape[1] % 4:
    raise ValueError(f"{what} takes square images (N, S, S, C) with S divisible by 4; "
                     f"got shape {x.shape}.")


class JointDiscriminator(nn.Module):
  """D(x, z): images (N, H, W, C) or vectors (N, F), latents (N, nz) -> (logit (N,), features).

  Features: "block<i>" (the x branch's layers, named as in
  `dcgan.Discriminator`), "z" (the z branch) and "penultimate" (the joint layer).

  Attributes:
    base_features: channels of the first conv of the "dcgan" x branch; doubled per halving.
    x_widths: hidden widths of the vector x branch.
    z_features: width of the z branch.
    joint_features: width of the joint layer.
    x_branch: "dcgan" or "zenati" (images; see the module docstring).
    negative_slope: slope of every LeakyReLU.
    dropout_rate: dropout after every hidden layer in train mode (0 = none).
    dtype: computation dtype (parameters stay float32).

  Raises:
    ValueError: x is neither (N, H, W, C) nor (N, F); an unknown `x_branch`;
    "zenati" on vectors or on images whose side is not divisible by 4.
  """
  base_features: int = 64
  x_widths: Sequence[int] = (64, 32)
  z_features: int = 512
  joint_features: int = 1024
  x_branch: str = "dcgan"
  negative_slope: float = 0.2
  dropout_rate: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, z, train: bool = True):
    if self.x_branch not in X_BRANCHES:
      raise ValueError(f"Unknown x_branch {self.x_branch!r}; known: {X_BRANCHES}.")
    act = lambda h: nn.Dropout(self.dropout_rate, deterministic=not train)(
        nn.leaky_relu(h, self.negative_slope))
    features = {}
    h = x.astype(self.dtype)
    if x.ndim == 4 and self.x_branch == "zenati":
      _check_image(x, "JointDiscriminator(x_branch='zenati')")
      for i in range(2):
        h = nn.Conv(64, (4, 4), strides=(2, 2), padding="SAME", kernel_init=dcgan.conv_init,
                    dtype=self.dtype, name=f"conv{i}")(h)
        if i > 0:
          h = tf_batch_norm(train, f"bn{i}")(h)
        h = act(h)
        features[f"block{i}"] = h
    elif x.ndim == 4:
      for i in range(dcgan.num_halvings(x.shape[1])):
        h = nn.Conv(self.base_features * 2**i, (4, 4), strides=(2, 2),
                    padding=((1, 1), (1, 1)), use_bias=False, kernel_init=dcgan.conv_init,
                    dtype=self.dtype, name=f"conv{i}")(h)
        if i > 0:
          h = dcgan.batch_norm(train, f"bn{i}")(h)
        h = act(h)
        features[f"block{i}"] = h
    elif x.ndim == 2:
      if self.x_branch != "dcgan":
        raise ValueError(f"x_branch {self.x_branch!r} is for images; got vectors {x.shape}.")
      for i, width in enumerate(self.x_widths):
        h = act(_dense(width, f"x_dense{i}", self.dtype)(h))
        features[f"block{i}"] = h
    else:
      raise ValueError(f"JointDiscriminator takes images (N, H, W, C) or vectors (N, F); "
                       f"got x of shape {x.shape}.")
    h = h.reshape(h.shape[0], -1)
    hz = act(_dense(self.z_features, "z_dense", self.dtype)(z.astype(self.dtype)))
    features["z"] = hz
    h = jnp.concatenate([h, hz], axis=-1)
    h = act(_dense(self.joint_features, "joint_dense", self.dtype)(h))
    features["penultimate"] = h
    logit = _dense(1, "dense_out", self.dtype)(h)
    return logit[:, 0].astype(jnp.float32), features


class ZenatiEncoder(nn.Module):
  """EGBAD's MNIST encoder: image (N, S, S, C) -> (z (N, out_features) float32, features).

  Features "block0".."block2" (the conv layers' activations).

  Attributes:
    out_features: latent size (EGBAD's MNIST: 200).
    dtype: computation dtype (parameters stay float32).

  Raises:
    ValueError: the images are not square with a side divisible by 4.
  """
  out_features: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = True):
    _check_image(x, "ZenatiEncoder")
    features = {}
    h = x.astype(self.dtype)
    for i, (width, stride) in enumerate(((32, 1), (64, 2), (128, 2))):
      h = nn.Conv(width, (3, 3), strides=(stride, stride), padding="SAME",
                  kernel_init=dcgan.conv_init, dtype=self.dtype, name=f"conv{i}")(h)
      if i > 0:
        h = tf_batch_norm(train, f"bn{i}")(h)
      h = nn.leaky_relu(h, 0.1)
      features[f"block{i}"] = h
    z = _dense(self.out_features, "dense_out", self.dtype)(h.reshape(h.shape[0], -1))
    return z.astype(jnp.float32), features


class ZenatiGenerator(nn.Module):
  """EGBAD's MNIST generator: z (N, nz) -> image (N, image_size, image_size, channels) in [-1, 1].

  Attributes:
    image_size: output side, divisible by 4.
    channels: output channels.
    dtype: computation dtype (parameters stay float32).

  Raises:
    ValueError: `image_size` is not a positive multiple of 4.
  """
  image_size: int
  channels: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z, train: bool = True):
    if self.image_size <= 0 or self.image_size % 4:
      raise ValueError(f"ZenatiGenerator needs an image_size divisible by 4; got "
                       f"{self.image_size}.")
    side = self.image_size // 4
    h = z.astype(self.dtype)
    for i, width in enumerate((1024, side * side * 128)):
      h = nn.relu(tf_batch_norm(train, f"bn{i}")(_dense(width, f"dense{i}", self.dtype)(h)))
    h = h.reshape(h.shape[0], side, side, 128)
    h = nn.ConvTranspose(64, (4, 4), strides=(2, 2), padding="SAME",
                         kernel_init=dcgan.conv_init, dtype=self.dtype, name="convt0")(h)
    h = nn.relu(tf_batch_norm(train, "bn2")(h))
    h = nn.ConvTranspose(self.channels, (4, 4), strides=(2, 2), padding="SAME",
                         kernel_init=dcgan.conv_init, dtype=self.dtype, name="convt_out")(h)
    return jnp.tanh(h.astype(jnp.float32))
