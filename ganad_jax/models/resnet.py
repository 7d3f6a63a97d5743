"""ResNet-18/34/50 and Wide-ResNet-50-2 feature extractors (eval mode, frozen).

Papers: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016
(arXiv:1512.03385); Zagoruyko & Komodakis, "Wide Residual Networks", BMVC 2016
(arXiv:1605.07146).

Reference code followed: torchvision.models.resnet (v1.5: the bottleneck's
stride sits on its 3x3 convolution; wide_resnet50_2 doubles the bottleneck
width, width_per_group=128), with the same module names, so that
`ganad_jax.pretrained` maps torchvision state dicts one to one. Explicit
symmetric padding as torchvision (7x7: 3, 3x3: 1, max pool 3x3 s2 pad 1),
BatchNorm eps 1e-5 with running statistics.

Shapes, input (N, H, W, 3) float32 NHWC, any H, W >= 32:

  key     stride  resnet18/34  resnet50 / wide_resnet50_2
  stem    2       64           64   (conv1 + bn1 + relu, before the max pool)
  layer1  4       64           256
  layer2  8       128          512
  layer3  16      256          1024
  layer4  32      512          2048

The classifier (`fc`) is not part of the module.
"""

import flax.linen as nn
import jax

BN_EPSILON = 1e-5

# (block, layers, width_per_group)
VARIANTS = {
    "resnet18": ("basic", (2, 2, 2, 2), 64),
    "resnet34": ("basic", (3, 4, 6, 3), 64),
    "resnet50": ("bottleneck", (3, 4, 6, 3), 64),
    "wide_resnet50_2": ("bottleneck", (3, 4, 6, 3), 128),
}

STAGES = ("stem", "layer1", "layer2", "layer3", "layer4")


def _bn(name: str) -> nn.BatchNorm:
  return nn.BatchNorm(use_running_average=True, epsilon=BN_EPSILON, name=name)


def _conv(features: int, kernel: int, stride: int, name: str) -> nn.Conv:
  pad = kernel // 2
  return nn.Conv(features, (kernel, kernel), strides=stride, padding=((pad, pad), (pad, pad)),
                 use_bias=False, name=name)


class BasicBlock(nn.Module):
  """3x3 -> 3x3 residual block (expansion 1)."""
  planes: int
  stride: int
  downsample: bool
  width_per_group: int = 64

  @nn.compact
  def __call__(self, inputs: jax.Array) -> jax.Array:
    x = nn.relu(_bn("bn1")(_conv(self.planes, 3, self.stride, "conv1")(inputs)))
    x = _bn("bn2")(_conv(self.planes, 3, 1, "conv2")(x))
    identity = inputs
    if self.downsample:
      identity = _bn("downsample_1")(_conv(self.planes, 1, self.stride, "downsample_0")(inputs))
    return nn.relu(x + identity)


class Bottleneck(nn.Module):
  """1x1 -> 3x3 (stride) -> 1x1 residual block (expansion 4), torchvision v1.5."""
  planes: int
  stride: int
  downsample: bool
  width_per_group: int = 64

  @nn.compact
  def __call__(self, inputs: jax.Array) -> jax.Array:
    width = self.planes * self.width_per_group // 64
    x = nn.relu(_bn("bn1")(_conv(width, 1, 1, "conv1")(inputs)))
    x = nn.relu(_bn("bn2")(_conv(width, 3, self.stride, "conv2")(x)))
    x = _bn("bn3")(_conv(self.planes * 4, 1, 1, "conv3")(x))
    identity = inputs
    if self.downsample:
      identity = _bn("downsample_1")(_conv(self.planes * 4, 1, self.stride, "downsample_0")(inputs))
    return nn.relu(x + identity)


class ResNet(nn.Module):
  """torchvision ResNet-`variant`: image -> {"stem", "layer1".."layer4"}.

  Attributes:
    variant: "resnet18", "resnet34", "resnet50" or "wide_resnet50_2".

  Call with `x` (N, H, W, 3) float32, H, W >= 32, ImageNet-normalised for
  torchvision's weights. BatchNorm always uses its running statistics: apply
  with {"params", "batch_stats"} and no mutable collections.
  """
  variant: str = "resnet18"

  @nn.compact
  def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
    if self.variant not in VARIANTS:
      raise ValueError(f"unknown ResNet variant {self.variant!r}; one of {sorted(VARIANTS)}")
    kind, layers, width_per_group = VARIANTS[self.variant]
    block, expansion = (BasicBlock, 1) if kind == "basic" else (Bottleneck, 4)
    out = {}
    x = out["stem"] = nn.relu(_bn("bn1")(_conv(64, 7, 2, "conv1")(x)))
    x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    in_ch = 64
    for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers)):
      for j in range(n):
        stride = 2 if i > 0 and j == 0 else 1
        x = block(planes, stride=stride, downsample=j == 0 and (stride != 1 or in_ch != planes * expansion),
                  width_per_group=width_per_group, name=f"layer{i + 1}_{j}")(x)
        in_ch = planes * expansion
      out[f"layer{i + 1}"] = x
    return out
