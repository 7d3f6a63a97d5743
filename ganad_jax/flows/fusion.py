"""MSFlow's fusion flow: a fixed channel permutation per scale, then one coupling across scales.

Port of `FusionCouplingLayer`, `FusionSTNets` and `FusionNet`
(cool-xuan/msflow, `models/freia_utils.py`) behind FrEIA's `PermuteRandom`
(`models/flow_models.py`), channels-last. For scales l = 1..L with C_l (even)
channels, x_l = (x1_l, x2_l) halves:

  (s2, t2)_l = ST_2(x2_1..x2_L);  y1_l = exp(e(s2_l)) x1_l + t2_l
  (s1, t1)_l = ST_1(y1_1..y1_L);  y2_l = exp(e(s1_l)) x2_l + t1_l
  e(s) = clamp * 0.636 * atan(s / clamp)      (MSFlow's soft clamp)

ST: every scale average-pooled (adaptive) to the smallest grid, concatenated,
conv 3x3 to a quarter of the channels, LayerNorm, ReLU, conv 3x3 back, ReLU,
split per scale, bilinearly upsampled (align corners) to each grid and added
to its input; then per scale a 3x3 conv for s and one for t.
log|det J| = sum over scales and entries of e(s1) + e(s2). The outputs are
clipped to +-1e6 as the reference does (the identity for finite inputs in
range; the inverse does not undo a clip). The reference's unused condition
path and `rescale` option are left out (MSFlow calls it without either).
"""

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from ganad_jax.flows import coupling
from ganad_jax.flows import spatial


class FusionSubnet(nn.Module):
  """`FusionSTNets`: per-scale (s, t) from every scale's half, list in, list out."""
  channels: Sequence[int]

  @nn.compact
  def __call__(self, xs):
    small = xs[-1].shape[1:3]
    pooled = jnp.concatenate([spatial.adaptive_avg_pool(x, small) for x in xs], axis=-1)
    total = sum(self.channels)
    h = coupling.conv(total // 4, 3, total, "conv1")(pooled)
    h = nn.relu(nn.LayerNorm(epsilon=1e-5, name="norm")(h))
    h = nn.relu(coupling.conv(total, 3, total // 4, "conv2")(h))
    splits = np.cumsum(self.channels)[:-1]
    out = []
    for i, (x, part) in enumerate(zip(xs, jnp.split(h, splits, axis=-1))):
      f = x + spatial.resize_align_corners(part, x.shape[1:3])
      c = self.channels[i]
      out.append((coupling.conv(c, 3, c, f"conv_s{i}")(f), coupling.conv(c, 3, c, f"conv_t{i}")(f)))
    return out


class FusionFlow(nn.Module):
  """PermuteRandom per scale, then `FusionCouplingLayer`; inputs a list of (N, h_l, w_l, C_l).

  Attributes:
    clamp: the soft clamp (MSFlow passes its `clamp_alpha`, 1.9).
    seed: picks the scales' fixed permutations.
  """
  clamp: float = 1.9
  seed: int = 0

  def _e(self, s):
    return self.clamp * 0.636 * jnp.arctan(s / self.clamp)

  @nn.compact
  def __call__(self, xs, reverse: bool = False):
    """(list of outputs, log|det J| (N,)); reverse: the inverse, logdet negated."""
    channels = [x.shape[-1] for x in xs]
    odd = [c for c in channels if c % 2]
    if odd:
      raise ValueError(f"MSFlow's fusion coupling needs an even channel count per scale; got "
                       f"{channels}.")
    half = [c // 2 for c in channels]
    perms = [coupling.permutation(c, 1000 * self.seed + i, False) for i, c in enumerate(channels)]
    st2, st1 = FusionSubnet(half, name="subnet_2"), FusionSubnet(half, name="subnet_1")
    sum_all = lambda ss: sum(jnp.sum(self._e(s).reshape(s.shape[0], -1), axis=1) for s in ss)
    if not reverse:
      xs = [x[..., p] for x, p in zip(xs, perms)]
      x1, x2 = [x[..., :h] for x, h in zip(xs, half)], [x[..., h:] for x, h in zip(xs, half)]
      c2 = st2(x2)
      y1 = [jnp.exp(self._e(s)) * a + t for a, (s, t) in zip(x1, c2)]
      c1 = st1(y1)
      y2 = [jnp.exp(self._e(s)) * a + t for a, (s, t) in zip(x2, c1)]
      ys = [jnp.clip(jnp.concatenate([a, b], axis=-1), -1e6, 1e6) for a, b in zip(y1, y2)]
      return ys, sum_all([s for s, _ in c1]) + sum_all([s for s, _ in c2])
    y1, y2 = [y[..., :h] for y, h in zip(xs, half)], [y[..., h:] for y, h in zip(xs, half)]
    c1 = st1(y1)
    x2 = [(b - t) * jnp.exp(-self._e(s)) for b, (s, t) in zip(y2, c1)]
    c2 = st2(x2)
    x1 = [(a - t) * jnp.exp(-self._e(s)) for a, (s, t) in zip(y1, c2)]
    out = [jnp.concatenate([a, b], axis=-1)[..., np.argsort(p)] for a, b, p in zip(x1, x2, perms)]
    return out, -(sum_all([s for s, _ in c1]) + sum_all([s for s, _ in c2]))
