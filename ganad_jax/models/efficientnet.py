"""EfficientNet B0-B7 and EfficientNet-Lite0-4 feature extractors (eval mode, frozen).

Papers: Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional
Neural Networks", ICML 2019 (arXiv:1905.11946); EfficientNet-Lite: the
tensorflow/tpu repository, models/official/efficientnet/lite/.

Reference code followed: lukemelas/EfficientNet-PyTorch (`efficientnet_pytorch`,
model.py / utils.py) and its Lite fork ml-illustrated/EfficientNet-Lite-PyTorch
(`efficientnet_lite_pytorch`), whose parameter names the converter in
`ganad_jax.pretrained` reads. Same block list, width / depth rounding
(`round_filters`, `round_repeats`), TF "same" padding (Flax's "SAME" pads
`total // 2` before and the rest after, as Conv2dStaticSamePadding does for
the image size it is built for, and for any size as Conv2dDynamicSamePadding),
BatchNorm eps 1e-3 with running statistics (momentum does not matter at eval).

B: swish, squeeze-excitation (ratio 0.25 of the block's input channels).
Lite: ReLU6, no squeeze-excitation, stem (32) and head (1280) channels and the
first and last stages' repeats not scaled.

Shapes, input (N, H, W, 3) float32 NHWC, any H, W >= 32 (outputs ceil(H / s)):

  key      stride  B0 / Lite0 channels
  stem     2       32
  stage1   2       16
  stage2   4       24
  stage3   8       40
  stage4   16      80
  stage5   16      112
  stage6   32      192
  stage7   32      320
  head     32      1280 (conv_head + BN + activation, before pooling)

Wider variants scale the channels (`stage_channels(variant)`). The classifier
(`_fc`) is not part of the module.
"""

import math
from typing import Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

BN_EPSILON = 1e-3

# (width, depth) coefficients: efficientnet_params() in the reference utils.py.
VARIANTS = {
    "b0": (1.0, 1.0), "b1": (1.0, 1.1), "b2": (1.1, 1.2), "b3": (1.2, 1.4),
    "b4": (1.4, 1.8), "b5": (1.6, 2.2), "b6": (1.8, 2.6), "b7": (2.0, 3.1),
    "lite0": (1.0, 1.0), "lite1": (1.0, 1.1), "lite2": (1.1, 1.2),
    "lite3": (1.2, 1.4), "lite4": (1.4, 1.8),
}

STAGES = ("stem", "stage1", "stage2", "stage3", "stage4", "stage5", "stage6",
          "stage7", "head")


class _Stage(NamedTuple):
  repeats: int
  kernel: int
  stride: int
  expand: int
  in_ch: int
  out_ch: int


# 'r1_k3_s11_e1_i32_o16_se0.25', ... of the reference (B0 / Lite0 base).
_BASE_STAGES = (
    _Stage(1, 3, 1, 1, 32, 16),
    _Stage(2, 3, 2, 6, 16, 24),
    _Stage(2, 5, 2, 6, 24, 40),
    _Stage(3, 3, 2, 6, 40, 80),
    _Stage(3, 5, 1, 6, 80, 112),
    _Stage(4, 5, 2, 6, 112, 192),
    _Stage(1, 3, 1, 6, 192, 320),
)


def _round_filters(filters: int, width: float, divisor: int = 8) -> int:
  filters *= width
  new = max(divisor, int(filters + divisor / 2) // divisor * divisor)
  if new < 0.9 * filters:  # Never round down by more than 10%.
    new += divisor
  return int(new)


def _check_variant(variant: str) -> str:
  variant = variant.removeprefix("efficientnet-").removeprefix("efficientnet_")
  if variant not in VARIANTS:
    raise ValueError(f"unknown EfficientNet variant {variant!r}; one of {sorted(VARIANTS)}")
  return variant


def stages(variant: str) -> tuple[_Stage, ...]:
  """The seven scaled stages (repeats, kernel, stride, expand, in, out) of `variant`."""
  variant = _check_variant(variant)
  width, depth = VARIANTS[variant]
  lite = variant.startswith("lite")
  out = []
  for i, s in enumerate(_BASE_STAGES):
    fixed = lite and i in (0, len(_BASE_STAGES) - 1)
    repeats = s.repeats if fixed else int(math.ceil(depth * s.repeats))
    in_ch = 32 if lite and i == 0 else _round_filters(s.in_ch, width)
    out.append(s._replace(repeats=repeats, in_ch=in_ch, out_ch=_round_filters(s.out_ch, width)))
  return tuple(out)


def stage_channels(variant: str) -> dict[str, int]:
  """Channels of each named output of `EfficientNet(variant)`."""
  variant = _check_variant(variant)
  width, _ = VARIANTS[variant]
  lite = variant.startswith("lite")
  channels = {"stem": 32 if lite else _round_filters(32, width)}
  for i, s in enumerate(stages(variant)):
    channels[f"stage{i + 1}"] = s.out_ch
  channels["head"] = 1280 if lite else _round_filters(1280, width)
  return channels


def _bn(name: str) -> nn.BatchNorm:
  return nn.BatchNorm(use_running_average=True, epsilon=BN_EPSILON, name=name)


class MBConvBlock(nn.Module):
  """Mobile inverted bottleneck: [1x1 expand] -> kxk depthwise -> [SE] -> 1x1 project (+ skip)."""
  stage: _Stage
  stride: int
  in_ch: int
  se: bool
  act: Callable[[jax.Array], jax.Array]

  @nn.compact
  def __call__(self, inputs: jax.Array) -> jax.Array:
    s = self.stage
    mid = self.in_ch * s.expand
    x = inputs
    if s.expand != 1:
      x = nn.Conv(mid, (1, 1), use_bias=False, name="expand_conv")(x)
      x = self.act(_bn("bn0")(x))
    x = nn.Conv(mid, (s.kernel, s.kernel), strides=self.stride, padding="SAME",
                feature_group_count=mid, use_bias=False, name="depthwise_conv")(x)
    x = self.act(_bn("bn1")(x))
    if self.se:
      squeezed = max(1, int(self.in_ch * 0.25))
      y = jnp.mean(x, axis=(1, 2), keepdims=True)
      y = self.act(nn.Conv(squeezed, (1, 1), name="se_reduce")(y))
      y = nn.Conv(mid, (1, 1), name="se_expand")(y)
      x = jax.nn.sigmoid(y) * x
    x = nn.Conv(s.out_ch, (1, 1), use_bias=False, name="project_conv")(x)
    x = _bn("bn2")(x)
    if self.stride == 1 and self.in_ch == s.out_ch:
      x = x + inputs  # Drop-connect is the identity at eval.
    return x


class EfficientNet(nn.Module):
  """EfficientNet-`variant` (b0..b7, lite0..lite4): image -> dict of stage outputs.

  Attributes:
    variant: "b0".."b7" or "lite0".."lite4" ("efficientnet-" prefix allowed).

  Call with `x` (N, H, W, 3) float32, H, W >= 32, normalised as the weights
  expect (ImageNet mean / std for the lukemelas B weights, (v - 127) / 128 of
  8-bit v for the Lite weights; see `methods/backbone.py`); returns
  {"stem", "stage1".."stage7", "head"} (see the module docstring for shapes).
  BatchNorm always uses its running statistics: apply with
  {"params", "batch_stats"} and no mutable collections.
  """
  variant: str = "b0"

  @nn.compact
  def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
    variant = _check_variant(self.variant)
    lite = variant.startswith("lite")
    act = jax.nn.relu6 if lite else jax.nn.silu
    channels = stage_channels(variant)
    out = {}
    x = nn.Conv(channels["stem"], (3, 3), strides=2, padding="SAME", use_bias=False,
                name="conv_stem")(x)
    x = out["stem"] = act(_bn("bn0")(x))
    index = 0
    for i, s in enumerate(stages(variant)):
      for r in range(s.repeats):
        x = MBConvBlock(s, stride=s.stride if r == 0 else 1,
                        in_ch=s.in_ch if r == 0 else s.out_ch, se=not lite, act=act,
                        name=f"blocks_{index}")(x)
        index += 1
      out[f"stage{i + 1}"] = x
    x = nn.Conv(channels["head"], (1, 1), use_bias=False, name="conv_head")(x)
    out["head"] = act(_bn("bn1")(x))
    return out
