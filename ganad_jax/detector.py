"""`Detector`: a scikit-learn-style API over the same code path as the experiment scripts.

`fit` is `train.train` (the one training loop: checkpoints, resume, early
stopping), `score_samples` is `evaluation.score_split` (eval-mode BatchNorm,
fixed-size padded batches, one score key) and `Detector.load` is
`workdir.restore`; only the array handling below is specific to it.

Tabular data, rows (N, F) of numbers (one-hot encode categories first):

>>> import numpy as np
>>> from ganad_jax import Detector
>>> rng = np.random.default_rng(0)
>>> normal = rng.normal(size=(200, 6))
>>> det = Detector("ae", train__num_steps=30, train__batch_size=32, model__nz=2,
...                model__mlp_widths=(8, 4), optim__lr=1e-2)
>>> det.fit(normal)
Detector(method='ae', input='tabular (6 features)', contamination=None)
>>> far = rng.normal(size=(50, 6)) + 6.0
>>> bool(det.score_samples(far).mean() > det.score_samples(normal).mean())
True
>>> float(det.predict(far).mean())  # 1 = anomaly: above the 0.95 quantile of held-out normals.
1.0

Images (N, H, W) or (N, H, W, C), uint8 0..255 or float in [0, 1] / [-1, 1];
`anomaly_map` gives one map per image at the input's resolution:

>>> images = rng.uniform(0.0, 0.2, size=(64, 16, 16)).astype(np.float32)
>>> det = Detector("ae", contamination=0.1, train__num_steps=3, train__batch_size=16,
...                model__nz=4, model__base_features=4).fit(images)
>>> det.anomaly_map(images[:2]).shape
(2, 16, 16)
>>> round(float(det.predict(images).mean()), 1)  # contamination 0.1: 10 % of X flagged.
0.1
"""

import json
import numbers
import os
import shutil
import tempfile
import weakref

import jax
import ml_collections
import numpy as np

from ganad_jax import configs
from ganad_jax import data
from ganad_jax import evaluation
from ganad_jax import metrics as metrics_lib
from ganad_jax import reporting
from ganad_jax import runner
from ganad_jax import train as train_lib
from ganad_jax import workdir as workdir_lib
from ganad_jax.data import images as images_lib
from ganad_jax.data import protocols
from ganad_jax.data import tabular

DEFAULT_METHOD = "ganomaly"
INPUT_RANGES = ("auto", "0_255", "0_1", "-1_1")
_STATE_FILE = "detector.json"
_FIT_FILE = "detector_fit.json"
_FORMAT_VERSION = 1
_RANGE_TOLERANCE = 1e-3  # Relative to the range's width: float rounding, not data errors.
_CHECKPOINT_DIRS = ("checkpoints", "best")


def make_config(method: str | None = None, config=None, **overrides) -> ml_collections.ConfigDict:
  """The experiment config a `Detector` trains with.

  Args:
    method: `config.method`; None keeps the config's method, or "ganomaly"
      when `config` is None or a mapping.
    config: None (the defaults of `configs.base_config(method)`), a full
      `ConfigDict` (e.g. `configs/ae_digits.py`'s `get_config()`; copied, not
      modified; with another `method`, `configs.with_method` gives it that
      method's sections), or a mapping of dotted field names to values applied
      to the defaults, e.g. `{"train.num_steps": 100}`.
    **overrides: `section__field=value` keyword arguments, the dot written as a
      double underscore (scikit-learn's convention for nested parameters),
      e.g. `train__num_steps=100`, `model__mlp_widths=(8, 4)`; applied last.

  Returns:
    A validated copy.

  Raises:
    ValueError: an unknown field, naming it and the fields that exist.
  """
  if config is None or isinstance(config, dict) and not isinstance(config,
                                                                    ml_collections.ConfigDict):
    mapping = dict(config or {})
    base = configs.base_config(method or DEFAULT_METHOD)
    for name, value in mapping.items():
      configs.set_field(base, name, value, "Config mapping key")
  elif isinstance(config, ml_collections.ConfigDict):
    base = ml_collections.ConfigDict(config.to_dict())
  else:
    raise TypeError(f"config must be None, an ml_collections.ConfigDict or a dict of dotted "
                    f"names; got {type(config).__name__}.")
  if method is not None and method != base.method:
    base = configs.with_method(base, method)
  for name, value in overrides.items():
    configs.set_field(base, name.replace("__", "."), value, f"Keyword {name}:")
  configs.validate(base)
  return base


def _check_array(X, what: str) -> np.ndarray:
  x = np.asarray(X)
  if x.dtype == object or x.dtype.kind not in "biuf":
    raise ValueError(f"{what} must be a numeric array; got dtype {x.dtype}.")
  if x.dtype.kind == "b":
    x = x.astype(np.float32)
  if x.ndim not in (2, 3, 4):
    raise ValueError(f"{what} must be tabular rows (N, F), grayscale images (N, H, W) or images "
                     f"(N, H, W, C); got an array of rank {x.ndim}, shape {x.shape}.")
  if len(x) == 0:
    raise ValueError(f"{what} is empty (shape {x.shape}).")
  if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
    bad = int(np.sum(~np.isfinite(x)))
    raise ValueError(f"{what} holds {bad} NaN/Inf values; impute or drop them first.")
  return x


def _check_channels(x: np.ndarray, what: str) -> None:
  if x.ndim == 4 and x.shape[-1] not in (1, 3):
    hint = " (channels first? pass (N, H, W, C))" if x.shape[1] in (1, 3) else ""
    raise ValueError(f"Images (N, H, W, C) need C = 1 or 3; {what} has shape {x.shape}{hint}.")


def _range_of(x: np.ndarray, requested: str) -> str:
  """The value range of images: "0_255", "0_1" or "-1_1" (see `Detector`)."""
  if requested != "auto":
    return requested
  if x.dtype.kind in "biu":
    return "0_255"
  lo, hi = float(x.min()), float(x.max())
  if lo < 0.0:
    return "-1_1"
  if hi <= 1.0 + _RANGE_TOLERANCE:
    return "0_1"
  raise ValueError(f"Float images must lie in [0, 1] or [-1, 1]; X holds values up to {hi:g}. "
                   "Pass uint8 images for 0..255, or input_range='0_255'.")


_BOUNDS = {"0_255": (0.0, 255.0), "0_1": (0.0, 1.0), "-1_1": (-1.0, 1.0)}


def _to_unit(x: np.ndarray, value_range: str, what: str) -> np.ndarray:
  """Images in `value_range` -> float32 in [-1, 1], checking the values."""
  lo, hi = _BOUNDS[value_range]
  slack = _RANGE_TOLERANCE * (hi - lo)
  x_lo, x_hi = float(x.min()), float(x.max())
  if x_lo < lo - slack or x_hi > hi + slack:
    raise ValueError(f"{what} holds values in [{x_lo:g}, {x_hi:g}], outside the range "
                     f"[{lo:g}, {hi:g}] of the images the detector was fitted on "
                     f"(input_range={value_range!r}).")
  scaled = (x.astype(np.float32) - np.float32(lo)) * np.float32(2.0 / (hi - lo)) - np.float32(1)
  return np.clip(scaled, -1.0, 1.0)


def _luma(x: np.ndarray) -> np.ndarray:
  """RGB -> grayscale with PIL's weights (as `images.to_channels`), for float images."""
  return (x[..., :1] * 0.299 + x[..., 1:2] * 0.587 + x[..., 2:3] * 0.114).astype(np.float32)


def _resize_maps(maps: np.ndarray, height: int, width: int) -> np.ndarray:
  """Bilinear resize of (N, h, w) maps to (N, height, width) (PIL mode 'F')."""
  if maps.shape[1:] == (height, width):
    return maps
  from PIL import Image  # pylint: disable=g-import-not-at-top
  return np.stack([np.asarray(Image.fromarray(m.astype(np.float32)).resize(
      (width, height), Image.Resampling.BILINEAR)) for m in maps])


def _is_power_of_two_side(height: int, width: int) -> bool:
  return height == width and height >= 16 and height & (height - 1) == 0


class Detector:
  """A generative anomaly detector with the scikit-learn surface.

  `fit(X)` trains `method` on X (assumed normal) with `train.train`, holding
  out `config.data.val_fraction` of the rows (seeded by `config.seed`, as the
  data protocols do) as validation normals: they set the threshold and, if
  enabled, early stopping. `score_samples(X)` returns raw anomaly scores, HIGHER
  = MORE ANOMALOUS (the opposite sign of scikit-learn's
  `IsolationForest.score_samples`); `predict(X)` returns 1 for anomalies.

  Accepted inputs:
    - tabular: float or int rows (N, F). Each feature is MinMax-scaled to
      [-1, 1] by `data.tabular.numeric_scaler()` fitted on the training rows
      only (not the held-out ones); later inputs may fall outside [-1, 1].
    - images: (N, H, W) grayscale or (N, H, W, C) channels-last with C 1 or 3;
      uint8 (or ints) in 0..255, or floats in [0, 1] or [-1, 1]. The range is
      detected at `fit` ("auto": floats with a negative value are [-1, 1],
      other floats [0, 1]) or given as `input_range`, and every later input
      must lie in the same range. Images are mapped to [-1, 1] as the data
      loaders do (uint8: `images.prepare_uint8`; floats: rescaled, then PIL
      bilinear) at a side of `data.image_size` if you set it, else the
      training images' own side when square and a power of two >= 16, else
      the config's `data.image_size`; channels become those of the training
      images. Later inputs may have other sizes (resized alike); maps come
      back at each input's own resolution.
    NaN / Inf, a wrong rank, a wrong feature count or out-of-range values
    raise ValueError.

  Config: `config` is None (defaults), a full `ConfigDict` or a mapping of
  dotted names; keyword overrides are `section__field=value` (double
  underscore for the dot), e.g. `Detector("ae", train__num_steps=100)`. See
  `make_config`. Unknown fields raise ValueError.

  Attributes (after fit):
    threshold_: the decision threshold used by `predict` (score > threshold_
      is an anomaly): the `1 - contamination` quantile of the scores of all
      fitted rows if `contamination` is set, else `val_threshold_`.
    val_threshold_: the `config.eval.threshold_quantile` quantile of the
      held-out normals' scores.
    input_shape_: the shape of one example as the network sees it.
    train_info_: `train.train`'s info (steps, wall time, early stopping).
  """

  def __init__(self, method: str | None = None, config=None, workdir: str | None = None, *,
               contamination: float | None = None, input_range: str = "auto", **overrides):
    """Builds an unfitted detector.

    Args:
      method: the method name (`ganad_jax.methods.NAMES`); None keeps the
        method of `config`, or "ganomaly" without a config.
      config: None, a `ConfigDict` or a mapping of dotted names (`make_config`).
      workdir: where checkpoints, event files and `config.json` go; None uses
        a temporary directory removed with the detector. A workdir holding a
        checkpoint of the same method trained on the same X resumes it; one
        trained on other data is refused.
      contamination: the expected fraction of anomalies in the X given to
        `fit`, in (0, 0.5]; sets `threshold_`. None uses the validation quantile.
      input_range: "auto", "0_255", "0_1" or "-1_1" (images only).
      **overrides: `section__field=value` config overrides.
    """
    if contamination is not None and (
        isinstance(contamination, bool) or not isinstance(contamination, numbers.Real)
        or not 0.0 < contamination <= 0.5):
      raise ValueError(f"contamination must be a number in (0, 0.5] or None; got "
                       f"{contamination!r}.")
    if input_range not in INPUT_RANGES:
      raise ValueError(f"input_range must be one of {INPUT_RANGES}; got {input_range!r}.")
    self.config = make_config(method, config, **overrides)
    self.method = self.config.method
    self.workdir = workdir
    self.contamination = contamination
    self.input_range = input_range
    self._size_given = "data__image_size" in overrides or (
        isinstance(config, dict) and not isinstance(config, ml_collections.ConfigDict)
        and "data.image_size" in config)
    self._fitted = False

  def __repr__(self) -> str:
    parts = [f"method={self.method!r}"]
    if self._fitted:
      spec = self._spec
      what = (f"tabular ({spec['input_shape'][0]} features)" if spec["kind"] == "tabular" else
              "images {}x{}x{}".format(*spec["input_shape"]))
      parts.append(f"input={what!r}")
    parts.append(f"contamination={self.contamination!r}")
    return f"Detector({', '.join(parts)})"

  # -------------------------------------------------------------------------
  # Inputs
  # -------------------------------------------------------------------------

  def _fit_spec(self, x: np.ndarray) -> dict:
    """What `fit` learns about the inputs (everything but the tabular scaler)."""
    if x.ndim == 2:
      return {"kind": "tabular", "input_shape": [int(x.shape[1])]}
    _check_channels(x, "X")
    height, width = x.shape[1:3]
    channels = 1 if x.ndim == 3 else int(x.shape[-1])
    if self._size_given or not _is_power_of_two_side(height, width):
      size = int(self.config.data.image_size)
    else:
      size = int(height)
    return {"kind": "image", "input_range": _range_of(x, self.input_range),
            "input_shape": [size, size, channels]}

  def _prepare(self, X, what: str = "X") -> np.ndarray:
    """X -> float32 network inputs, with the fitted spec."""
    x = _check_array(X, what)
    spec = self._spec
    if spec["kind"] == "tabular":
      if x.ndim != 2 or x.shape[1] != spec["input_shape"][0]:
        raise ValueError(f"{what} must be rows (N, {spec['input_shape'][0]}) like the data the "
                         f"detector was fitted on; got shape {x.shape}.")
      return self._scaler.transform(x.astype(np.float64)).astype(np.float32)
    if x.ndim == 2:
      raise ValueError(f"{what} must be images (N, H, W[, C]); the detector was fitted on images "
                       f"and got rows of shape {x.shape}.")
    _check_channels(x, what)
    if x.ndim == 3:
      x = x[..., None]
    size, _, channels = spec["input_shape"]
    if spec["input_range"] == "0_255" and x.dtype == np.uint8:
      return images_lib.prepare_uint8(x, size, channels)  # Exactly as the image loaders.
    unit = _to_unit(x, spec["input_range"], what)
    if unit.shape[-1] == 3 and channels == 1:
      unit = _luma(unit)
    if unit.shape[1:3] != (size, size):
      unit = np.stack([images_lib.resize_float(unit[..., c], size)
                       for c in range(unit.shape[-1])], axis=-1)
      unit = np.clip(unit, -1.0, 1.0)
    if unit.shape[-1] == 1 and channels == 3:
      unit = np.repeat(unit, 3, axis=-1)
    return unit

  def _require_fitted(self) -> None:
    if not self._fitted:
      raise RuntimeError("This Detector is not fitted yet: call fit(X) or Detector.load(path).")

  # -------------------------------------------------------------------------
  # fit / score / predict
  # -------------------------------------------------------------------------

  def fit(self, X, y=None) -> "Detector":
    """Trains on X (normal examples) and sets the threshold.

    Args:
      X: normal training examples (see the class docstring for the formats).
      y: ignored (scikit-learn compatibility): training uses no labels.

    Returns:
      self.
    """
    del y
    config = self.config
    x = _check_array(X, "X")
    spec = self._fit_spec(x)
    train_pos, val_pos = protocols.holdout(len(x), config.data.val_fraction, config.seed,
                                           what="rows of X")
    self._spec = spec
    if spec["kind"] == "tabular":
      self._scaler = tabular.numeric_scaler().fit(x[train_pos].astype(np.float64))
      spec["scaler_min"] = self._scaler.data_min_.tolist()
      spec["scaler_max"] = self._scaler.data_max_.tolist()
    else:
      config.data.image_size, config.data.channels = spec["input_shape"][0], spec["input_shape"][2]
    prepared = self._prepare(x)

    workdir = self._fit_workdir(prepared)
    splits = data.Splits(
        train=self._normal_split(prepared[train_pos]), val=self._normal_split(prepared[val_pos]),
        test=None,
        info={"source": "arrays", "protocol": "detector", "notes": [
            f"Detector.fit on {len(x)} rows of X: {len(train_pos)} train, {len(val_pos)} "
            f"held-out normals (val_fraction {config.data.val_fraction:g}, seed {config.seed})"]})
    run, self._state, self.train_info_, _ = train_lib.train(config, workdir, splits)
    self._method = run.method
    self._score_key = runner.root_keys(config.seed).score
    self._score_fn = jax.jit(self._method.score)
    self._fitted = True
    self.workdir_ = workdir
    self.input_shape_ = tuple(spec["input_shape"])

    val_scores = self._outputs(prepared[val_pos])["score"]
    self.val_threshold_ = metrics_lib.threshold_from_normals(val_scores,
                                                             config.eval.threshold_quantile)
    if self.contamination is not None:
      train_scores = self._outputs(prepared[train_pos])["score"]
      every = np.concatenate([train_scores, val_scores])
      self.threshold_ = float(np.quantile(every, 1.0 - self.contamination))
    else:
      self.threshold_ = self.val_threshold_
    return self

  @staticmethod
  def _normal_split(x: np.ndarray) -> data.Split:
    return data.Split(x=x, y=np.zeros(len(x), np.int32), kinds=np.full(len(x), "normal"))

  def _fit_workdir(self, prepared: np.ndarray) -> str:
    """The training workdir; refuses one whose checkpoint was trained on other data."""
    if self.workdir is None:
      workdir = tempfile.mkdtemp(prefix="ganad_detector_")
      weakref.finalize(self, shutil.rmtree, workdir, ignore_errors=True)
    else:
      workdir = self.workdir
    record = {"data_sha256": data.digest(prepared), "spec": self._spec}
    path = os.path.join(workdir, _FIT_FILE)
    trained = any(os.path.isdir(os.path.join(workdir, d)) and os.listdir(os.path.join(workdir, d))
                  for d in _CHECKPOINT_DIRS)
    if trained:
      previous = None
      if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
          previous = json.load(f)
      if previous != record:
        raise ValueError(f"workdir {workdir!r} holds a checkpoint trained on other data (or not "
                         "by a Detector); fit into an empty or new workdir.")
    train_lib.prepare_workdir(workdir)
    reporting.write_json(path, record)
    return workdir

  def _outputs(self, prepared: np.ndarray) -> dict[str, np.ndarray]:
    return evaluation.score_split(self._score_fn, self._state, prepared, self._score_key,
                                  self.config.eval.batch_size)

  def score_samples(self, X) -> np.ndarray:
    """Raw anomaly scores (N,), float32; higher = more anomalous."""
    self._require_fitted()
    return self._outputs(self._prepare(X))["score"]

  def predict(self, X) -> np.ndarray:
    """1 for anomalies (score > `threshold_`), 0 for normal examples; int (N,)."""
    return (self.score_samples(X) > self.threshold_).astype(np.int64)

  def fit_predict(self, X, y=None) -> np.ndarray:
    """`fit(X)` then `predict(X)`."""
    return self.fit(X, y).predict(X)

  def anomaly_map(self, X) -> np.ndarray:
    """Per-pixel anomaly maps (N, H, W) at the resolution of X (images only)."""
    self._require_fitted()
    if self._spec["kind"] != "image":
      raise ValueError("anomaly_map needs images; this detector was fitted on tabular rows "
                       f"(N, {self._spec['input_shape'][0]}).")
    x = _check_array(X, "X")
    outputs = self._outputs(self._prepare(x))
    if "map" not in outputs:
      raise ValueError(f"Method {self.method!r} produces no anomaly map (its score outputs: "
                       f"{', '.join(sorted(outputs))}).")
    return _resize_maps(np.asarray(outputs["map"], np.float32), x.shape[1], x.shape[2])

  # -------------------------------------------------------------------------
  # save / load
  # -------------------------------------------------------------------------

  def save(self, path: str) -> None:
    """Writes the fitted detector to the directory `path` (created if needed).

    It holds `config.json`, `detector.json` (input handling, scaler, thresholds)
    and the checkpoints; `Detector.load(path)` gives the same scores. A path
    that exists must be empty or hold a saved detector (which is replaced).
    """
    self._require_fitted()
    path = os.path.abspath(path)
    same = os.path.abspath(self.workdir_) == path
    if not same and os.path.isdir(path) and os.listdir(path):
      if not os.path.exists(os.path.join(path, _STATE_FILE)):
        raise ValueError(f"{path!r} exists and is not a saved Detector; save into an empty or "
                         "new directory.")
      for name in _CHECKPOINT_DIRS:
        shutil.rmtree(os.path.join(path, name), ignore_errors=True)
    os.makedirs(path, exist_ok=True)
    if not same:
      for name in _CHECKPOINT_DIRS:
        source = os.path.join(self.workdir_, name)
        if os.path.isdir(source):
          shutil.copytree(source, os.path.join(path, name))
    reporting.write_json(os.path.join(path, "config.json"), self.config.to_dict())
    reporting.write_json(os.path.join(path, _STATE_FILE), {
        "format_version": _FORMAT_VERSION, "spec": self._spec,
        "contamination": self.contamination, "input_range": self.input_range,
        "threshold": self.threshold_, "val_threshold": self.val_threshold_,
        "train_info": {k: reporting.finite_or_none(v) for k, v in self.train_info_.items()}})

  @classmethod
  def load(cls, path: str, member: int | None = None) -> "Detector":
    """Restores a detector written by `save` (its newest good checkpoint).

    Args:
      path: the directory `save` wrote.
      member: if the directory holds an ensemble's stacked state (trained with
        `ensemble__seeds`), the member k to load, as the single run it equals;
        None for a single run.

    Raises:
      FileNotFoundError: `path` holds no saved Detector or no checkpoint.
      ValueError: another format version; an ensemble without `member`, or a
        `member` out of range or given for a single run.
    """
    state_path = os.path.join(path, _STATE_FILE)
    if not os.path.exists(state_path):
      raise FileNotFoundError(f"{state_path} not found: {path!r} is not a saved Detector.")
    with open(state_path, encoding="utf-8") as f:
      saved = json.load(f)
    if saved.get("format_version") != _FORMAT_VERSION:
      raise ValueError(f"{state_path} has format version {saved.get('format_version')}; this "
                       f"ganad_jax reads version {_FORMAT_VERSION}.")
    config = workdir_lib.load_config(path)
    det = cls(config=config, workdir=path, contamination=saved["contamination"],
              input_range=saved["input_range"])
    spec = saved["spec"]
    det._spec = spec
    if spec["kind"] == "tabular":
      # Fitting the scaler on its two extreme rows restores data_min_ / data_max_ exactly.
      det._scaler = tabular.numeric_scaler().fit(
          np.asarray([spec["scaler_min"], spec["scaler_max"]], np.float64))
    trained = workdir_lib.restore(path, tuple(spec["input_shape"]), member=member, config=config,
                                  pick_with="Detector.load(path, member=k)")
    det._method, det._state, det._score_key = trained.method, trained.state, trained.score_key
    det._score_fn = jax.jit(det._method.score)
    det.threshold_, det.val_threshold_ = saved["threshold"], saved["val_threshold"]
    det.train_info_ = saved["train_info"]
    det.input_shape_ = tuple(spec["input_shape"])
    det.workdir_ = path
    det._fitted = True
    return det
