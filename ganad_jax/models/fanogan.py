"""f-AnoGAN's ResNet generator, critic and encoder (Schlegl et al. 2019), for any image size.

Ported from tSchlegl/f-AnoGAN (TF 1.2): `GoodGenerator`, `GoodDiscriminator`
and `ResidualBlock` of wgangp_64x64.py (Gulrajani's WGAN-GP 64x64 ResNet) and
`Encoder` of z_encoding_izif.py, layer by layer:

- ResidualBlock: norm, ReLU, conv_1 (no bias), norm, ReLU, conv_2, plus a
  shortcut (identity when nothing changes, else a 1x1 conv with bias and
  Glorot init). 'down': conv_1 3x3 in->in, conv_2 3x3 in->out then a 2x2 mean
  pool; shortcut mean pool then 1x1. 'up': conv_1 = 2x nearest upsampling
  (the reference's depth_to_space of 4 copies) then 3x3 in->out, conv_2 3x3
  out->out; shortcut upsampling then 1x1.
- Norms: the critic LayerNorm over (H, W, C) per sample with per-channel
  scale and offset, eps 1e-5 (tflib Layernorm; no batch statistics, as the
  gradient penalty needs); generator and encoder BatchNorm as TF's
  `tf.layers.batch_normalization` (momentum 0.99, eps 1e-3, scale 1).
- Init (tflib): kernels U(-s sqrt 3, s sqrt 3) with s = sqrt(4 / (fan_in +
  fan_out)) ("he_init") or sqrt(2 / (fan_in + fan_out)) (Glorot: the first
  conv of critic and encoder, shortcuts, linears), fan = channels x k^2;
  biases 0.
- Generator: Linear(nz -> 4*4*m_K*dim), reshape to 4x4, K 'up' blocks, BN,
  ReLU, 3x3 conv to the image channels, tanh. Critic: 3x3 conv (channels ->
  dim), K 'down' blocks, flatten (the features f), Linear -> 1. Encoder: the
  critic's stack with BatchNorm, Linear -> nz, tanh (the paper's 'tanh_fc').

Sizes: K = log2(image_size) - 2 resampling blocks and widths m_i * dim with
m = (1, 2, 4, 8, 8, 8, ...): at 64x64 (K = 4) exactly the reference's
dim -> 2 dim -> 4 dim -> 8 dim -> 8 dim; at 16x16 (digits) its first two
blocks (the generator mirrors the critic). Inputs (N, H, H, C), H a power
of two >= 16, float32 in [-1, 1]; outputs float32.
"""

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ganad_jax.models import dcgan


def _tf_uniform(numerator: float):
  """tflib's init: uniform with std sqrt(numerator / (fan_in + fan_out))."""
  def init(key, shape, dtype=jnp.float32):
    receptive = math.prod(shape[:-2]) if len(shape) > 2 else 1
    fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
    limit = math.sqrt(3.0) * math.sqrt(numerator / (fan_in + fan_out))
    return jax.random.uniform(key, shape, dtype, -limit, limit)
  return init


HE = _tf_uniform(4.0)
GLOROT = _tf_uniform(2.0)


def width_multipliers(image_size: int) -> list[int]:
  """m_0 .. m_K: the widths (x dim) from the image side to the 4x4 side."""
  return [min(2**i, 8) for i in range(dcgan.num_halvings(image_size) + 1)]


def _conv(features: int, kernel: int, init, bias: bool, dtype, name: str):
  return nn.Conv(features, (kernel, kernel), padding="SAME", use_bias=bias, kernel_init=init,
                 dtype=dtype, name=name)


def _mean_pool(x):
  n, h, w, c = x.shape
  return x.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def _upsample(x):
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


class ResidualBlock(nn.Module):
  """The reference's ResidualBlock; `norm` "layer" (critic) or "batch" (generator, encoder)."""
  features: int
  resample: str | None
  norm: str
  dtype: Any = jnp.float32

  def _norm(self, x, train: bool, name: str):
    if self.norm == "layer":
      return nn.LayerNorm(epsilon=1e-5, reduction_axes=(-3, -2, -1), feature_axes=-1,
                          dtype=self.dtype, name=name)(x)
    return nn.BatchNorm(use_running_average=not train, momentum=0.99, epsilon=1e-3,
                        dtype=self.dtype, name=name)(x)

  @nn.compact
  def __call__(self, x, train: bool):
    in_features = x.shape[-1]
    if self.resample is None and in_features == self.features:
      shortcut = x
    else:
      pre = {"down": _mean_pool, "up": _upsample, None: lambda v: v}[self.resample]
      shortcut = _conv(self.features, 1, GLOROT, True, self.dtype, "shortcut")(pre(x))
    y = nn.relu(self._norm(x, train, "norm1"))
    if self.resample == "up":
      y = _conv(self.features, 3, HE, False, self.dtype, "conv1")(_upsample(y))
    else:
      y = _conv(in_features, 3, HE, False, self.dtype, "conv1")(y)
    y = nn.relu(self._norm(y, train, "norm2"))
    y = _conv(self.features, 3, HE, True, self.dtype, "conv2")(y)
    if self.resample == "down":
      y = _mean_pool(y)
    return shortcut + y


class Generator(nn.Module):
  """z (N, nz) -> image (N, image_size, image_size, channels) in [-1, 1] (float32)."""
  image_size: int
  channels: int
  dim: int = 64
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z, train: bool = True):
    mult = width_multipliers(self.image_size)
    x = nn.Dense(4 * 4 * mult[-1] * self.dim, kernel_init=GLOROT, dtype=self.dtype,
                 name="input")(z.astype(self.dtype))
    x = x.reshape(x.shape[0], 4, 4, mult[-1] * self.dim)
    for i, m in enumerate(reversed(mult[:-1])):
      x = ResidualBlock(m * self.dim, "up", "batch", self.dtype, name=f"res{i + 1}")(x, train)
    x = nn.BatchNorm(use_running_average=not train, momentum=0.99, epsilon=1e-3,
                     dtype=self.dtype, name="output_norm")(x)
    x = _conv(self.channels, 3, HE, True, self.dtype, "output")(nn.relu(x))
    return jnp.tanh(x.astype(jnp.float32))


class _DownStack(nn.Module):
  """The critic's and the encoder's stack: image -> (N, 4*4*m_K*dim) features, and per block."""
  dim: int
  norm: str
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    mult = width_multipliers(x.shape[1])
    features = {}
    x = _conv(self.dim, 3, GLOROT, True, self.dtype, "input")(x.astype(self.dtype))
    for i, m in enumerate(mult[1:]):
      x = ResidualBlock(m * self.dim, "down", self.norm, self.dtype, name=f"res{i + 1}")(x, train)
      features[f"block{i + 1}"] = x
    features["penultimate"] = x.reshape(x.shape[0], -1).astype(jnp.float32)
    return features


class Critic(nn.Module):
  """Image -> (logit (N,) float32, features): "penultimate" (N, 4*4*m_K*dim), the
  reference's `out_features` (f of izi_f), and "block<i>" (N, h, w, c)."""
  dim: int = 64
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = True):
    features = _DownStack(self.dim, "layer", self.dtype, name="stack")(x, train)
    logit = nn.Dense(1, kernel_init=GLOROT, dtype=self.dtype,
                     name="output")(features["penultimate"])
    return logit[:, 0].astype(jnp.float32), features


class Encoder(nn.Module):
  """Image -> (z (N, nz) float32, features); z = tanh(Linear(...)) when `tanh` (the paper's)."""
  nz: int
  dim: int = 64
  tanh: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = True):
    features = _DownStack(self.dim, "batch", self.dtype, name="stack")(x, train)
    z = nn.Dense(self.nz, kernel_init=GLOROT, dtype=self.dtype,
                 name="output")(features["penultimate"]).astype(jnp.float32)
    return (jnp.tanh(z) if self.tanh else z), features
