"""DifferNet's GLOW coupling: two halves, two subnets, a soft-clamped scale, fixed permutations.

Rudolph, Wandt, Rosenhahn, "Same Same But DifferNet: Semi-Supervised Defect
Detection with Normalizing Flows", WACV 2021; ported from its reference code,
marco-rudolph/differnet `freia_funcs.py` (itself from FrEIA):

  `glow_coupling_layer`: x = (x1, x2) split on the last (channel) axis at
    D // 2; [s2, t2] = s2_net(x2), y1 = e(s2) * x1 + t2; [s1, t1] = s1_net(y1),
    y2 = e(s1) * x2 + t1; log|det J| = sum log_e(s1) + sum log_e(s2) with the
    soft clamp log_e(s) = clamp * 0.636 * atan(s / clamp) (|log scale| <
    clamp), e = exp(log_e); the output is clipped to +-1e6 as the reference
    does (inside that range the map is exact).
  `permute_layer`: a fixed random permutation of the channels drawn by
    numpy's legacy generator seeded with the block's index k
    (`np.random.seed(k); np.random.permutation(D)`), the same as the reference.
  `F_fully_connected`: Linear-ReLU-Linear-ReLU-Linear-ReLU-Linear with
    torch.nn.Linear's initialisation (weights and biases uniform in
    +-1/sqrt(fan_in)); dropout (reference default 0) is not ported.

Each module returns (y, log_det) with log_det (N,) float32 = log|det dy/dx|
summed over every axis but the first; `reverse=True` runs the exact inverse
and returns -log|det| of the forward map at the output (the reference's
reverse pass has the same maths). Channels are the LAST axis (NHWC for maps,
(N, D) for vectors), where the reference's are axis 1.
"""

import math
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

OUTPUT_CLIP = 1e6  # The reference clamps every coupling output to +-1e6.
_ATAN_FACTOR = 0.636  # ~2 / pi: the reference's soft clamp keeps |log scale| < clamp.


def log_scale(s: jax.Array, clamp: float) -> jax.Array:
  """The reference's soft clamp of a log scale: clamp * 0.636 * atan(s / clamp); s if clamp <= 0."""
  if clamp <= 0:
    return s
  return clamp * _ATAN_FACTOR * jnp.arctan(s / clamp)


def torch_linear_init(fan_in: int):
  """torch.nn.Linear / Conv2d default initialiser: uniform in +-1/sqrt(fan_in), any shape."""
  bound = 1.0 / math.sqrt(fan_in)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)
  return init


class FullyConnected(nn.Module):
  """DifferNet's subnet `F_fully_connected`: 3 hidden ReLU layers of `hidden` units.

  Attributes:
    features: output size (2 x the other half's size: scale and shift).
    hidden: internal size (the reference's fc_internal, 2048).
  """
  features: int
  hidden: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    sizes = (self.hidden, self.hidden, self.hidden, self.features)
    fan_in = x.shape[-1]
    for i, size in enumerate(sizes):
      init = torch_linear_init(fan_in)
      x = nn.Dense(size, kernel_init=init, bias_init=init, name=f"fc{i}")(x)
      if i < len(sizes) - 1:
        x = nn.relu(x)
      fan_in = size
    return x


def random_permutation(channels: int, seed: int) -> np.ndarray:
  """The reference's fixed permutation of block `seed`: np.random.seed(seed); permutation(channels)."""
  return np.random.RandomState(seed).permutation(channels)


def permute(x: jax.Array, perm: np.ndarray, reverse: bool = False) -> jax.Array:
  """x[..., perm] (log|det| = 0), or its inverse with `reverse`."""
  index = np.argsort(perm) if reverse else perm
  return jnp.take(x, jnp.asarray(index), axis=-1)


def sum_but_batch(x: jax.Array) -> jax.Array:
  """(N,): x (N, ...) summed over every axis but the first."""
  return jnp.sum(x, axis=tuple(range(1, x.ndim)))


class GlowCoupling(nn.Module):
  """The reference's `glow_coupling_layer` on the last axis of x (N, ..., D).

  Attributes:
    subnet: (out_features, name) -> a linen module mapping (N, ..., d_in) to
      (N, ..., out_features); called twice: "s1" (on y1, out 2 (D - D//2))
      and "s2" (on x2, out 2 (D//2)).
    clamp: the soft clamp of the log scales (the reference's clamp_alpha, 3).
  """
  subnet: Callable[[int, str], nn.Module]
  clamp: float = 3.0

  @nn.compact
  def __call__(self, x: jax.Array, reverse: bool = False) -> tuple[jax.Array, jax.Array]:
    """(y, log_det (N,)): the coupling, or its inverse with `reverse`."""
    len1 = x.shape[-1] // 2
    len2 = x.shape[-1] - len1
    s1_net, s2_net = self.subnet(2 * len2, "s1"), self.subnet(2 * len1, "s2")
    x1, x2 = x[..., :len1], x[..., len1:]
    if not reverse:
      r2 = s2_net(x2)
      s2, t2 = r2[..., :len1], r2[..., len1:]
      y1 = jnp.exp(log_scale(s2, self.clamp)) * x1 + t2
      r1 = s1_net(y1)
      s1, t1 = r1[..., :len2], r1[..., len2:]
      y2 = jnp.exp(log_scale(s1, self.clamp)) * x2 + t1
      sign = 1.0
    else:  # x = (y1, y2) of the forward pass.
      r1 = s1_net(x1)
      s1, t1 = r1[..., :len2], r1[..., len2:]
      y2 = (x2 - t1) * jnp.exp(-log_scale(s1, self.clamp))
      r2 = s2_net(y2)
      s2, t2 = r2[..., :len1], r2[..., len1:]
      y1 = (x1 - t2) * jnp.exp(-log_scale(s2, self.clamp))
      sign = -1.0
    log_det = sum_but_batch(log_scale(s1, self.clamp)) + sum_but_batch(log_scale(s2, self.clamp))
    y = jnp.concatenate([y1, y2], axis=-1)
    if not reverse:
      y = jnp.clip(y, -OUTPUT_CLIP, OUTPUT_CLIP)
    return y, sign * log_det


class GlowFlow(nn.Module):
  """DifferNet's `nf_head`: `blocks` x (fixed permutation k, GLOW coupling k) on vectors.

  Attributes:
    blocks: coupling blocks (the reference's n_coupling_blocks, 8).
    clamp: soft clamp (3).
    hidden: the fully connected subnets' internal size (2048).
  """
  blocks: int = 8
  clamp: float = 3.0
  hidden: int = 2048

  @nn.compact
  def __call__(self, x: jax.Array, reverse: bool = False) -> tuple[jax.Array, jax.Array]:
    """x (N, D) -> (z (N, D), log|det dz/dx| (N,)); with `reverse`, z -> (x, -log|det|)."""
    subnet = lambda features, name: FullyConnected(features, self.hidden, name=name)
    couplings = [GlowCoupling(subnet, self.clamp, name=f"coupling{k}") for k in range(self.blocks)]
    perms = [random_permutation(x.shape[-1], k) for k in range(self.blocks)]
    log_det = jnp.zeros(x.shape[:1], jnp.float32)
    order: Sequence[int] = range(self.blocks)
    if reverse:
      for k in reversed(order):
        x, ld = couplings[k](x, reverse=True)
        x = permute(x, perms[k], reverse=True)
        log_det = log_det + ld
    else:
      for k in order:
        x, ld = couplings[k](permute(x, perms[k]))
        log_det = log_det + ld
    return x, log_det


def gaussian_nll(z: jax.Array, log_det: jax.Array) -> jax.Array:
  """-log p(x) in nats per example under a standard normal base: (N,) from z (N, ...), log_det (N,).

  0.5 ||z||^2 + (D / 2) log(2 pi) - log|det dz/dx|, D = the size of one
  example's z. The references' losses drop the constant and divide by D.
  """
  d = math.prod(z.shape[1:])
  return 0.5 * sum_but_batch(jnp.square(z)) + 0.5 * d * math.log(2 * math.pi) - log_det


def reference_loss(z: jax.Array, log_det: jax.Array) -> jax.Array:
  """The references' `get_loss`: mean over the batch of (0.5 ||z||^2 - log_det) / D, a scalar."""
  d = math.prod(z.shape[1:])
  return jnp.mean(0.5 * sum_but_batch(jnp.square(z)) - log_det) / d
