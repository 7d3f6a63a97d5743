"""U-Net generator of Skip-GANomaly (Akcay et al. 2019), the pix2pix U-Net.

log2(image_size) k4 s2 convolutions take the image down to 1x1; as many k4 s2
transposed convolutions take it back up, each concatenating the matching
encoder map (skip connection) before the next up-sampling. Channels are
base, 2x, 4x, 8x base and then stay at 8x, as in pix2pix's `UnetGenerator`:
the outermost down-sampling has no activation or norm, the innermost no norm;
the others are LeakyReLU 0.2 -> conv -> BatchNorm on the way down and ReLU ->
transposed conv -> BatchNorm on the way up; the output is ReLU -> transposed
conv (with bias) -> tanh. No dropout (Skip-GANomaly's setting). Init N(0, 0.02)
for kernels and N(1, 0.02) for BatchNorm scales.
"""

import math
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from ganad_jax.models import dcgan


def num_levels(image_size: int) -> int:
  """Down-samplings from `image_size` to 1x1; ValueError unless a power of two >= 2."""
  if image_size < 2 or image_size & (image_size - 1):
    raise ValueError(f"image_size={image_size} is not supported: the U-Net needs a power of "
                     "two (set data.image_size; the loaders resize any input).")
  return int(math.log2(image_size))


class UNet(nn.Module):
  """Image (N, S, S, C) -> image (N, S, S, channels) in [-1, 1].

  Attributes:
    channels: output channels.
    base_features: channels of the outermost level; doubled per level up to 8x.
    dtype: computation dtype (parameters stay float32).
  """
  channels: int
  base_features: int = 64
  dtype: Any = jnp.float32

  def level_features(self, level: int) -> int:
    return self.base_features * min(2**level, 8)

  @nn.compact
  def __call__(self, x, train: bool = True):
    if x.shape[1] != x.shape[2]:
      raise ValueError(f"The U-Net needs square images; got {x.shape[1:]}.")
    levels = num_levels(x.shape[1])
    x = x.astype(self.dtype)
    skips = []
    for i in range(levels):
      if i > 0:
        x = nn.leaky_relu(x, 0.2)
      x = nn.Conv(self.level_features(i), (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)),
                  use_bias=False, kernel_init=dcgan.conv_init, dtype=self.dtype,
                  name=f"down{i}")(x)
      if 0 < i < levels - 1:
        x = dcgan.batch_norm(train, f"down_bn{i}")(x)
      skips.append(x)
    for i in reversed(range(levels)):
      outermost = i == 0
      features = self.channels if outermost else self.level_features(i - 1)
      x = nn.ConvTranspose(features, (4, 4), strides=(2, 2), padding="SAME",
                           use_bias=outermost, kernel_init=dcgan.conv_init, dtype=self.dtype,
                           name=f"up{i}")(nn.relu(x))
      if not outermost:
        x = dcgan.batch_norm(train, f"up_bn{i}")(x)
        x = jnp.concatenate([skips[i - 1], x], axis=-1)  # Skip first, as pix2pix.
    return jnp.tanh(x.astype(jnp.float32))
