"""CS-Flow's cross-scale flow: parallel GLOW couplings over 3 scales with cross-scale convolutions.

Rudolph, Wehrbein, Rosenhahn, Wandt, "Fully Convolutional Cross-Scale-Flows
for Image-based Defect Detection", WACV 2022; ported from its reference code,
marco-rudolph/cs-flow (`freia_funcs.py`, `model.py`):

  `CrossConvolutions`: per scale i, conv_i_0 (kernel k, in -> hidden),
    LeakyReLU(0.1) -> y_i, conv_i_1 (hidden -> out); plus y1 and y2
    upsampled x2 (bilinear, align_corners=False) through up_conv10 / up_conv21
    and y0, y1 through the stride-2 down_conv01 / down_conv12: out0 = conv0_1
    + up(y1), out1 = conv1_1 + down(y0) + up(y2), out2 = conv2_1 + down(y1);
    each output times a learnt scalar gamma_i initialised at 0 (use_gamma:
    every coupling starts as the identity). Zero padding of kernel // 2,
    biases everywhere (batch_norm=False), torch.nn.Conv2d's initialisation.
  `parallel_glow_coupling_layer`: the GLOW coupling of `flows/glow.py`
    (split D // 2, s2 on the second half, then s1 on y1, soft clamp
    clamp * 0.636 * atan(s / clamp)) applied to the 3 scales at once, the
    subnets being one CrossConvolutions each (s1, s2); log|det| per scale.
  `ParallelPermute`: per block k, numpy's legacy generator seeded with k
    draws one permutation per scale, in scale order (the reference's).
  `get_cs_flow_model`: 4 blocks of (permute, coupling) with kernel sizes
    (3, 3, 3, 5), clamp 3, hidden 1024.

Differs: channels are the last axis (NHWC); the upsampling resizes to the
finer scale's grid (= x2 when the grids halve exactly, the reference's
assert on multiples of 128 px), so odd grids work too; the reference's
reverse pass reads t from the wrong subnet output (`t02 = r01[...]`), here
the inverse is exact (the reference never runs it).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ganad_jax.flows import glow

Scales = tuple[jax.Array, jax.Array, jax.Array]


def _conv(features: int, kernel: int, in_features: int, stride: int = 1, name: str = ""):
  pad = kernel // 2
  init = glow.torch_linear_init(in_features * kernel * kernel)
  return nn.Conv(features, (kernel, kernel), strides=(stride, stride),
                 padding=((pad, pad), (pad, pad)), kernel_init=init, bias_init=init, name=name)


def upsample_to(x: jax.Array, like: jax.Array) -> jax.Array:
  """Bilinear (half-pixel centres, torch's align_corners=False) resize of x to like's grid."""
  return jax.image.resize(x, (x.shape[0], *like.shape[1:3], x.shape[-1]), "linear",
                          antialias=False)


class CrossConvolutions(nn.Module):
  """The reference's `CrossConvolutions` subnet over 3 scales (NHWC, each half the previous grid).

  Attributes:
    features: output channels per scale (2 x the other half: scale and shift).
    hidden: hidden channels (the reference's fc_internal, 1024).
    kernel: kernel size of every convolution (3, or 5 in the last block).
    leaky_slope: LeakyReLU's negative slope (0.1).
  """
  features: int
  hidden: int = 1024
  kernel: int = 3
  leaky_slope: float = 0.1

  @nn.compact
  def __call__(self, x0: jax.Array, x1: jax.Array, x2: jax.Array) -> Scales:
    c_in, k, h = x0.shape[-1], self.kernel, self.hidden
    act = lambda v: nn.leaky_relu(v, self.leaky_slope)
    y0 = act(_conv(h, k, c_in, name="conv_scale0_0")(x0))
    y1 = act(_conv(h, k, c_in, name="conv_scale1_0")(x1))
    y2 = act(_conv(h, k, c_in, name="conv_scale2_0")(x2))
    out0 = _conv(self.features, k, h, name="conv_scale0_1")(y0)
    out1 = _conv(self.features, k, h, name="conv_scale1_1")(y1)
    out2 = _conv(self.features, k, h, name="conv_scale2_1")(y2)
    y1_up = _conv(self.features, k, h, name="up_conv10")(upsample_to(y1, y0))
    y2_up = _conv(self.features, k, h, name="up_conv21")(upsample_to(y2, y1))
    y0_down = _conv(self.features, k, h, stride=2, name="down_conv01")(y0)
    y1_down = _conv(self.features, k, h, stride=2, name="down_conv12")(y1)
    out0 = out0 + y1_up
    out1 = out1 + y0_down + y2_up
    out2 = out2 + y1_down
    gammas = [self.param(f"gamma{i}", nn.initializers.zeros, (1,)) for i in range(3)]
    return out0 * gammas[0], out1 * gammas[1], out2 * gammas[2]


class ParallelGlowCoupling(nn.Module):
  """The reference's `parallel_glow_coupling_layer`: one GLOW coupling over 3 scales.

  Attributes:
    hidden, kernel: of the two CrossConvolutions subnets (s1, s2).
    clamp: the soft clamp (3).
  """
  hidden: int = 1024
  kernel: int = 3
  clamp: float = 3.0

  @nn.compact
  def __call__(self, xs: Scales, reverse: bool = False) -> tuple[Scales, tuple[jax.Array, ...]]:
    """(ys, log_dets): 3 NHWC maps with equal channels -> 3 maps, 3 log|det| (N,) each.

    With `reverse`, the inverse and -log|det| of the forward map.
    """
    channels = xs[0].shape[-1]
    len1 = channels // 2
    len2 = channels - len1
    s1_net = CrossConvolutions(2 * len2, self.hidden, self.kernel, name="s1")
    s2_net = CrossConvolutions(2 * len1, self.hidden, self.kernel, name="s2")
    first = [x[..., :len1] for x in xs]
    second = [x[..., len1:] for x in xs]
    e = lambda s, sign: jnp.exp(sign * glow.log_scale(s, self.clamp))
    if not reverse:
      r2 = s2_net(*second)
      s2 = [r[..., :len1] for r in r2]
      first = [e(s, 1) * x + r[..., len1:] for s, x, r in zip(s2, first, r2)]
      r1 = s1_net(*first)
      s1 = [r[..., :len2] for r in r1]
      second = [e(s, 1) * x + r[..., len2:] for s, x, r in zip(s1, second, r1)]
      sign = 1.0
    else:
      r1 = s1_net(*first)
      s1 = [r[..., :len2] for r in r1]
      second = [(x - r[..., len2:]) * e(s, -1) for s, x, r in zip(s1, second, r1)]
      r2 = s2_net(*second)
      s2 = [r[..., :len1] for r in r2]
      first = [(x - r[..., len1:]) * e(s, -1) for s, x, r in zip(s2, first, r2)]
      sign = -1.0
    ys = tuple(jnp.concatenate([a, b], axis=-1) for a, b in zip(first, second))
    if not reverse:
      ys = tuple(jnp.clip(y, -glow.OUTPUT_CLIP, glow.OUTPUT_CLIP) for y in ys)
    log_dets = tuple(
        sign * (glow.sum_but_batch(glow.log_scale(a, self.clamp))
                + glow.sum_but_batch(glow.log_scale(b, self.clamp)))
        for a, b in zip(s1, s2))
    return ys, log_dets


def parallel_permutations(channels: int, seed: int) -> list[np.ndarray]:
  """The reference's `ParallelPermute(seed)`: 3 permutations from one legacy generator seeded `seed`."""
  state = np.random.RandomState(seed)
  return [state.permutation(channels) for _ in range(3)]


class CrossScaleFlow(nn.Module):
  """The reference's `get_cs_flow_model`: per block k, a parallel permutation (seed k), a coupling.

  Attributes:
    kernels: one kernel size per block; its length is the number of blocks
      (the reference's (3, 3, 3, 5)).
    hidden: the subnets' hidden channels (1024).
    clamp: the soft clamp (3).
  """
  kernels: tuple[int, ...] = (3, 3, 3, 5)
  hidden: int = 1024
  clamp: float = 3.0

  @nn.compact
  def __call__(self, xs: Scales, reverse: bool = False) -> tuple[Scales, tuple[jax.Array, ...]]:
    """3 NHWC feature maps (N, h_i, w_i, C) -> (z_i, log|det dz_i/dx| (N,) per scale).

    The log-determinants per scale are the reference's `jacobian` list: the
    Jacobian is block-triangular across scales, and its log|det| is their sum.
    """
    channels = xs[0].shape[-1]
    blocks = [ParallelGlowCoupling(self.hidden, k, self.clamp, name=f"coupling{i}")
              for i, k in enumerate(self.kernels)]
    perms = [parallel_permutations(channels, i) for i in range(len(self.kernels))]
    log_dets = [jnp.zeros(xs[0].shape[:1], jnp.float32)] * 3
    xs = tuple(xs)
    order = range(len(blocks))
    for i in (reversed(order) if reverse else order):
      if not reverse:
        xs = tuple(glow.permute(x, p) for x, p in zip(xs, perms[i]))
      xs, lds = blocks[i](xs, reverse=reverse)
      if reverse:
        xs = tuple(glow.permute(x, p, reverse=True) for x, p in zip(xs, perms[i]))
      log_dets = [a + b for a, b in zip(log_dets, lds)]
    return xs, tuple(log_dets)
