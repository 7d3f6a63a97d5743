"""FrEIA's AllInOneBlock in Flax, its subnets, and `Flow`, a sequence of blocks.

Port of `FrEIA/modules/all_in_one_block.py` (vislearn/FrEIA), the block that
FastFlow, CFlow-AD and MSFlow build their flows from. For an input x with C
channels (last axis), C1 = C - C // 2 passive and C2 = C // 2 active:

  a = 0.1 * subnet(concat(x1, cond))             (2 C2 outputs, scaled by 0.1)
  s = clamp * tanh(a[:C2])                       (the soft clamp, FrEIA's `_affine`)
  u = concat(x1, x2 * exp(s) + a[C2:])
  y = P(u * g + b),  g = 0.1 * softplus_{beta=0.5}(g_raw)   (global affine)

P is a fixed random permutation of the channels ("hard") or, with
`permute_soft`, a fixed random rotation from SO(C) (scipy's
`special_ortho_group`, as FrEIA). log|det J| = sum(s) + n_locations * sum(log g)
per example (a rotation adds 0). g_raw starts at 2 log(exp(5 init) - 1), so g
starts at `global_affine_init`; b at 0.

Followed: the split sizes, the 0.1 scaling, the clamp, SOFTPLUS global affine,
hard / soft permutation, the condition concatenated to the subnet's input,
PyTorch's default initialisation of the subnets' layers (kaiming-uniform with
a = sqrt(5) and a uniform bias of bound 1 / sqrt(fan_in)), so first-step
losses can be compared with the references'. Not ported: GIN, learned
Householder reflections, reverse pre-permutation, SIGMOID / EXP global affine
(none of the flows here uses them). Differs: the permutation is drawn from
numpy's generator seeded by (`seed`, channels), a fixed function of the
architecture, not from torch's global RNG, and is a trace-time constant rather
than a (non-trainable) parameter, so it never enters the state or the
optimiser.
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

SUBNETS = ("conv", "conv_ln", "dense")


def torch_kernel_init():
  """PyTorch's Linear / Conv weight init: kaiming_uniform(a=sqrt(5)), U(+-1/sqrt(fan_in))."""
  return nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def torch_bias_init(fan_in: int):
  """PyTorch's default bias init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
  bound = 1.0 / np.sqrt(fan_in)
  return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound,
                                                                   bound)


def conv(features: int, kernel: int, in_channels: int, name: str | None = None) -> nn.Conv:
  """A 'same'-padded stride-1 conv initialised as PyTorch's nn.Conv2d."""
  return nn.Conv(features, (kernel, kernel), padding="SAME", kernel_init=torch_kernel_init(),
                 bias_init=torch_bias_init(in_channels * kernel * kernel), name=name)


def dense(features: int, in_features: int, name: str | None = None) -> nn.Dense:
  """A dense layer initialised as PyTorch's nn.Linear."""
  return nn.Dense(features, kernel_init=torch_kernel_init(),
                  bias_init=torch_bias_init(in_features), name=name)


class Subnet(nn.Module):
  """The s, t network of a coupling: two layers with a ReLU between.

  Attributes:
    out: output channels (2 C2).
    kind: "conv" (FastFlow: conv k, ReLU, conv k; hidden = int(in * ratio)),
      "conv_ln" (MSFlow: conv 3, LayerNorm over channels, ReLU, conv 3;
      hidden = in), "dense" (CFlow: Linear(in, 2 in), ReLU, Linear).
    kernel: conv kernel size (1 or 3; "conv" only).
    hidden_ratio: "conv" only.
  """
  out: int
  kind: str = "conv"
  kernel: int = 3
  hidden_ratio: float = 1.0

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    if self.kind == "dense":
      h = nn.relu(dense(2 * c, c, "fc1")(x))
      return dense(self.out, 2 * c, "fc2")(h)
    if self.kind == "conv":
      hidden, kernel = int(c * self.hidden_ratio), self.kernel
      h = nn.relu(conv(hidden, kernel, c, "conv1")(x))
      return conv(self.out, kernel, hidden, "conv2")(h)
    if self.kind == "conv_ln":
      h = conv(c, 3, c, "conv1")(x)
      h = nn.relu(nn.LayerNorm(epsilon=1e-5, name="ln")(h))
      return conv(self.out, 3, c, "conv2")(h)
    raise ValueError(f"subnet kind {self.kind!r} is not one of {SUBNETS}.")


def permutation(channels: int, seed: int, soft: bool) -> np.ndarray:
  """The fixed channel permutation: (C,) int32 indices, or with `soft` a (C, C) rotation."""
  if soft:
    if channels < 2:
      return np.ones((1, 1), np.float32)
    return stats.special_ortho_group.rvs(channels, random_state=np.random.default_rng(
        [seed, channels])).astype(np.float32)
  return np.random.default_rng([seed, channels]).permutation(channels).astype(np.int32)


def _sum_non_batch(x):
  return jnp.sum(x.reshape(x.shape[0], -1), axis=1)


class AllInOneBlock(nn.Module):
  """One FrEIA AllInOneBlock (module docstring); channels-last inputs.

  Attributes:
    clamp: the soft clamp alpha ("affine_clamping").
    seed: picks the fixed permutation (with the channel count).
    permute_soft: a random rotation instead of a permutation.
    global_affine_init: the global scale g at initialisation.
    subnet: `Subnet.kind`; kernel, hidden_ratio: its settings.
  """
  clamp: float = 2.0
  seed: int = 0
  permute_soft: bool = False
  global_affine_init: float = 1.0
  subnet: str = "conv"
  kernel: int = 3
  hidden_ratio: float = 1.0

  @nn.compact
  def __call__(self, x, cond=None, reverse: bool = False):
    """(y, log|det J|): x (N, ..., C) float32 -> y of the same shape, logdet (N,).

    cond: None or (N, ..., P) concatenated to the passive half (same leading
    shape as x). reverse: the inverse map; its logdet is the forward's
    negated, at the output.
    """
    c = x.shape[-1]
    c1, c2 = c - c // 2, c // 2
    locations = int(np.prod(x.shape[1:-1]))
    raw0 = 2.0 * np.log(np.exp(0.5 * 10.0 * self.global_affine_init) - 1.0)
    g_raw = self.param("global_scale", nn.initializers.constant(raw0), (c,))
    offset = self.param("global_offset", nn.initializers.zeros, (c,))
    scale = 0.1 * 2.0 * jax.nn.softplus(0.5 * g_raw)  # 0.1 * Softplus(beta=0.5).
    global_logdet = locations * jnp.sum(jnp.log(scale))
    perm = permutation(c, self.seed, self.permute_soft)
    subnet = Subnet(2 * c2, self.subnet, self.kernel, self.hidden_ratio, name="subnet")

    def coefficients(x1):
      a = 0.1 * subnet(x1 if cond is None else jnp.concatenate([x1, cond], axis=-1))
      return self.clamp * jnp.tanh(a[..., :c2]), a[..., c2:]  # FrEIA: no division by clamp.

    if not reverse:
      x1, x2 = x[..., :c1], x[..., c1:]
      s, t = coefficients(x1)
      u = jnp.concatenate([x1, x2 * jnp.exp(s) + t], axis=-1) * scale + offset
      y = u @ perm.T if self.permute_soft else u[..., perm]
      return y, _sum_non_batch(s) + global_logdet
    u = x @ perm if self.permute_soft else x[..., np.argsort(perm)]
    u = (u - offset) / scale
    x1, y2 = u[..., :c1], u[..., c1:]
    s, t = coefficients(x1)
    x = jnp.concatenate([x1, (y2 - t) * jnp.exp(-s)], axis=-1)
    return x, -_sum_non_batch(s) - global_logdet


class Flow(nn.Module):
  """A sequence of AllInOneBlocks (FrEIA's SequenceINN of them).

  Attributes:
    kernels: one entry per block: the conv kernel of its subnet (ignored by
      "dense"); its length is the number of blocks.
    subnet, hidden_ratio, clamp, permute_soft, global_affine_init: every
      block's (see `AllInOneBlock`).
    seed: block i's permutation uses seed (seed, i).
  """
  kernels: Sequence[int]
  subnet: str = "conv"
  hidden_ratio: float = 1.0
  clamp: float = 2.0
  permute_soft: bool = False
  global_affine_init: float = 1.0
  seed: int = 0

  @nn.compact
  def __call__(self, x, cond=None, reverse: bool = False):
    """(z, log|det J|) of the whole sequence; reverse runs the blocks backwards, inverted."""
    blocks = [AllInOneBlock(self.clamp, 1000 * self.seed + i, self.permute_soft,
                            self.global_affine_init, self.subnet, k, self.hidden_ratio,
                            name=f"block{i}")
              for i, k in enumerate(self.kernels)]
    logdet = jnp.zeros((x.shape[0],), jnp.float32)
    for block in (reversed(blocks) if reverse else blocks):
      x, j = block(x, cond, reverse)
      logdet = logdet + j
    return x, logdet
