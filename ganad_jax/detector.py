"""`Detector`: a scikit-learn-style API over the same code path as the experiment scripts.

`fit` is `train.train` (the one training loop: checkpoints, resume, early
stopping, ensembles, the patch protocol), `score_samples` is the run's
`scoring.Scorer` (eval-mode BatchNorm, fixed-size padded batches, the run's
score key, members, tiles stitched back) and `Detector.load` is
`workdir.restore`; what X may be and how it becomes the nets' inputs is
`ganad_jax.detector_inputs`, its files on disk `ganad_jax.detector_store`.

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
>>> det = Detector("ae", contamination=0.1, data__val_fraction=0.25, train__num_steps=3,
...                train__batch_size=16, model__nz=4, model__base_features=4).fit(images)
>>> det.anomaly_map(images[:2]).shape
(2, 16, 16)
>>> det.threshold_rows_  # contamination 0.1: the 0.9 quantile of 16 held-out rows' scores.
16
"""

import math
import numbers

import ml_collections
import numpy as np

from ganad_jax import configs
from ganad_jax import data
from ganad_jax import detector_inputs as inputs
from ganad_jax import detector_store as store
from ganad_jax import ensemble
from ganad_jax import metrics as metrics_lib
from ganad_jax import run_outputs
from ganad_jax import scoring
from ganad_jax import train as train_lib
from ganad_jax import workdir as workdir_lib
from ganad_jax.data import protocols
from ganad_jax.data import tabular

DEFAULT_METHOD = "ganomaly"
INPUT_RANGES = inputs.INPUT_RANGES


def make_config(method: str | None = None, config=None, **overrides) -> ml_collections.ConfigDict:
  """The experiment config a `Detector` trains with, checked as far as it can be without data.

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
    A copy checked by `configs.validate` (fields, patch, and the method's
    values that need no input shape: its registration's `Spec.check`) and
    `ensemble.plan` (seeds, grid fields).

  Raises:
    ValueError: an unknown field, naming it and the fields that exist; a
      value those checks refuse, naming the field and the value.
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
  configs.validate(base)  # With the method's own checks (its config registration's).
  ensemble.plan(base)
  return base


def _min_holdout(contamination: float) -> int:
  """Held-out rows the `1 - contamination` quantile needs: one expected above it."""
  return math.ceil(round(1.0 / contamination, 9))


class Detector:
  """A generative anomaly detector with the scikit-learn surface.

  `fit(X)` trains `method` on X (assumed normal) with `train.train`,
  holding out `config.data.val_fraction` of the rows (seeded by
  `config.seed`, as the data protocols do): the model is never fitted on
  them; they set the thresholds and, if enabled, early stopping.
  `score_samples(X)` returns raw anomaly scores, HIGHER = MORE ANOMALOUS (the
  opposite sign of scikit-learn's `IsolationForest.score_samples`);
  `predict(X)` returns 1 for anomalies.

  Accepted inputs (`ganad_jax.detector_inputs`):
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

  Ensembles (`ensemble__seeds=(0, 1, ...)`, `ensemble__grid`): one vmapped
  training of every member (`ganad_jax.ensemble`). `score_samples`,
  `anomaly_map` and `predict` use the mean over members of their scores
  (maps), thresholded on the held-out rows' mean scores; `member=k` picks
  member k alone with its own thresholds. `Detector.load(path, member=k)`
  loads member k as the single run it equals.

  Patches (`patch__size=c`, AnoGAN's protocol, `ganad_jax.patches`): the nets
  train on random c x c crops; every image is scored by its tiles, and its
  map is the tiles' maps stitched back (`patch__image_score` gives the image
  score).

  Config: `config` is None (defaults), a full `ConfigDict` or a mapping of
  dotted names; keyword overrides are `section__field=value` (double
  underscore for the dot), e.g. `Detector("ae", train__num_steps=100)`. See
  `make_config`: unknown fields and values the config checks refuse raise
  ValueError at construction.

  Attributes (after fit):
    threshold_: the decision threshold used by `predict` (score > threshold_
      is an anomaly): with `contamination` c, the 1 - c quantile of the
      held-out rows' scores (never of rows the model was fitted on, whose
      scores are lower than new rows'), else `val_threshold_`.
    val_threshold_: the `config.eval.threshold_quantile` quantile of the
      held-out rows' scores.
    threshold_rows_: how many held-out rows the thresholds come from.
    member_thresholds_: for an ensemble, per member {"threshold",
      "val_threshold"} of its own scores; else None.
    input_shape_: the shape of one example as the network sees it.
    train_info_: `train.train`'s info (steps, wall time, early stopping).
  """

  def __init__(self, method: str | None = None, config=None, workdir: str | None = None, *,
               contamination: float | None = None, input_range: str = "auto", **overrides):
    """Builds an unfitted detector; the config is checked here (`make_config`).

    Args:
      method: the method name (`ganad_jax.methods.NAMES`); None keeps the
        method of `config`, or "ganomaly" without a config.
      config: None, a `ConfigDict` or a mapping of dotted names (`make_config`).
      workdir: where checkpoints, event files and `config.json` go; None uses
        a temporary directory removed with the detector. A workdir holding a
        checkpoint of the same method trained on the same X resumes it; one
        trained on other data is refused.
      contamination: the expected fraction of anomalies in X (and in new data
        like it), in (0, 0.5]: `threshold_` flags that fraction of the
        held-out rows, which must number at least 1 / contamination. None
        uses the validation quantile.
      input_range: "auto", "0_255", "0_1" or "-1_1" (images only).
      **overrides: `section__field=value` config overrides.

    Raises:
      ValueError: a bad contamination or input_range; a config field or value
        refused by `make_config`, named.
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
    self._member = None  # k when loaded as member k of an ensemble.

  def __repr__(self) -> str:
    parts = [f"method={self.method!r}"]
    if self._fitted:
      spec = self._spec
      what = (f"tabular ({spec['input_shape'][0]} features)" if spec["kind"] == "tabular" else
              "images {}x{}x{}".format(*spec["input_shape"]))
      parts.append(f"input={what!r}")
    parts.append(f"contamination={self.contamination!r}")
    return f"Detector({', '.join(parts)})"

  def _prepare(self, X, what: str = "X") -> np.ndarray:
    """X -> float32 network inputs, with the fitted spec (`detector_inputs.prepare`)."""
    return inputs.prepare(X, self._spec, getattr(self, "_scaler", None), what)

  def _require_fitted(self) -> None:
    if not self._fitted:
      raise RuntimeError("This Detector is not fitted yet: call fit(X) or Detector.load(path).")

  def fit(self, X, y=None) -> "Detector":
    """Trains on X (normal examples, or with `contamination` anomalies) and sets the thresholds.

    Args:
      X: training examples (see the class docstring for the formats); the
        `data.val_fraction` held-out rows are scored, never fitted on.
      y: ignored (scikit-learn compatibility): training uses no labels.

    Returns:
      self.

    Raises:
      ValueError: bad X; too few held-out rows for `contamination` (named
        with the count); a config the data do not fit (e.g. patch__size
        larger than the images).
    """
    del y
    config = self.config
    x = inputs.check_array(X, "X")
    spec = inputs.fit_spec(x, self.input_range, config.data.image_size, self._size_given)
    train_pos, val_pos = protocols.holdout(len(x), config.data.val_fraction, config.seed,
                                           what="rows of X")
    if self.contamination is not None and len(val_pos) < _min_holdout(self.contamination):
      raise ValueError(
          f"contamination={self.contamination:g} takes the {1 - self.contamination:g} quantile "
          f"of the held-out rows' scores, which needs at least "
          f"{_min_holdout(self.contamination)} held-out rows; data.val_fraction="
          f"{config.data.val_fraction:g} of the {len(x)} rows of X holds out {len(val_pos)}. "
          "Pass more rows or a larger data__val_fraction.")
    self._spec = spec
    if spec["kind"] == "tabular":
      self._scaler = tabular.numeric_scaler().fit(x[train_pos].astype(np.float64))
      spec["scaler_min"] = self._scaler.data_min_.tolist()
      spec["scaler_max"] = self._scaler.data_max_.tolist()
    else:
      config.data.image_size, config.data.channels = spec["input_shape"][0], spec["input_shape"][2]
    prepared = self._prepare(x)

    workdir = store.fit_workdir(self.workdir, self,
                                {"data_sha256": data.digest(prepared), "spec": spec})
    splits = data.Splits(
        train=self._normal_split(prepared[train_pos]), val=self._normal_split(prepared[val_pos]),
        test=None,
        info={"source": "arrays", "protocol": "detector", "notes": [
            f"Detector.fit on {len(x)} rows of X: {len(train_pos)} train, {len(val_pos)} "
            f"held-out normals (val_fraction {config.data.val_fraction:g}, seed {config.seed})"]})
    run, self._state, self.train_info_, _ = train_lib.train(config, workdir, splits)
    self._scorer = scoring.Scorer(run, config.eval.batch_size)
    self._fitted = True
    self.workdir_ = workdir
    self.input_shape_ = tuple(spec["input_shape"])
    self._set_thresholds(self._scorer.members(self._state, prepared[val_pos]))
    return self

  def _set_thresholds(self, held_out: list[dict]) -> None:
    """The thresholds from the held-out rows' outputs, per member (`held_out`)."""
    quantile = self.config.eval.threshold_quantile

    def thresholds(scores):
      val = metrics_lib.threshold_from_normals(scores, quantile)
      if self.contamination is None:
        return val, val
      return float(np.quantile(scores, 1.0 - self.contamination)), val

    self.threshold_rows_ = len(held_out[0]["score"])
    self.threshold_, self.val_threshold_ = thresholds(_combine(held_out, None)["score"])
    self.member_thresholds_ = None
    if len(held_out) > 1:
      self.member_thresholds_ = [dict(zip(("threshold", "val_threshold"), thresholds(o["score"])))
                                 for o in held_out]

  @staticmethod
  def _normal_split(x: np.ndarray) -> data.Split:
    return data.Split(x=x, y=np.zeros(len(x), np.int32), kinds=np.full(len(x), "normal"))

  def _check_member(self, member) -> None:
    if member is None:
      return
    size = self._scorer.run.num_members if self._scorer.run.stacked else 0
    if not size:
      raise ValueError(f"member={member!r}: this detector is a single run (no ensemble__seeds "
                       "or ensemble__grid); it has no members to choose from.")
    if not (isinstance(member, (int, np.integer)) and not isinstance(member, bool)
            and 0 <= member < size):
      raise ValueError(f"member={member!r} is out of range: this detector is an ensemble of "
                       f"{size} members (0 <= member < {size}).")

  def _outputs(self, X, member) -> dict[str, np.ndarray]:
    self._require_fitted()
    self._check_member(member)
    return _combine(self._scorer.members(self._state, self._prepare(X)), member)

  def score_samples(self, X, member: int | None = None) -> np.ndarray:
    """Raw anomaly scores (N,), float32; higher = more anomalous.

    Args:
      X: rows or images like those given to `fit`.
      member: for an ensemble, member k's scores; None: the members' mean.

    Raises:
      ValueError: X does not fit the detector; `member` out of range, or
        given for a single run.
    """
    return self._outputs(X, member)["score"]

  def predict(self, X, member: int | None = None) -> np.ndarray:
    """1 for anomalies (score > threshold), 0 for normal examples; int (N,).

    The threshold is `threshold_`, or with `member=k` member k's own
    (`member_thresholds_[k]["threshold"]`).
    """
    threshold = (self.threshold_ if member is None or self.member_thresholds_ is None
                 else self.member_thresholds_[int(member)]["threshold"])
    return (self.score_samples(X, member) > threshold).astype(np.int64)

  def fit_predict(self, X, y=None) -> np.ndarray:
    """`fit(X)` then `predict(X)`."""
    return self.fit(X, y).predict(X)

  def anomaly_map(self, X, member: int | None = None) -> np.ndarray:
    """Per-pixel anomaly maps (N, H, W) at the resolution of X (images only).

    With the patch protocol, the tiles' maps stitched back to the images;
    for an ensemble the members' mean map, or member k's with `member=k`.
    """
    self._require_fitted()
    if self._spec["kind"] != "image":
      raise ValueError("anomaly_map needs images; this detector was fitted on tabular rows "
                       f"(N, {self._spec['input_shape'][0]}).")
    x = inputs.check_array(X, "X")
    outputs = self._outputs(x, member)
    if "map" not in outputs:
      raise ValueError(f"Method {self.method!r} produces no anomaly map (its score outputs: "
                       f"{', '.join(sorted(outputs))}).")
    return inputs.resize_maps(np.asarray(outputs["map"], np.float32), x.shape[1], x.shape[2])

  def save(self, path: str) -> None:
    """Writes the fitted detector to the directory `path` (created if needed).

    It holds `config.json`, `detector.json` (input handling, scaler, thresholds)
    and the checkpoints; `Detector.load(path)` gives the same scores. A path
    that exists must be empty or hold a saved detector (which is replaced).

    Raises:
      ValueError: `path` holds something else; this detector was loaded as
        one member of an ensemble (save the ensemble's directory instead).
    """
    self._require_fitted()
    if self._member is not None:
      raise ValueError(f"This detector is member {self._member} of the ensemble saved in "
                       f"{self.workdir_!r}; save or copy that directory instead.")
    store.save(path, self.workdir_, self.config.to_dict(), {
        "spec": self._spec, "contamination": self.contamination,
        "input_range": self.input_range, "threshold": self.threshold_,
        "val_threshold": self.val_threshold_, "threshold_rows": self.threshold_rows_,
        "member_thresholds": self.member_thresholds_,
        "train_info": {k: run_outputs.finite_or_none(v) for k, v in self.train_info_.items()}})

  @classmethod
  def load(cls, path: str, member: int | None = None) -> "Detector":
    """Restores a detector written by `save` (its newest good checkpoint).

    Args:
      path: the directory `save` wrote.
      member: if the directory holds an ensemble's stacked state (trained with
        `ensemble__seeds`), the member k to load, as the single run it equals,
        with its own thresholds; None loads what was saved (every member).

    Raises:
      FileNotFoundError: `path` holds no saved Detector or no checkpoint.
      ValueError: another format version; a `member` out of range or given
        for a single run.
    """
    saved = store.read_state(path)
    config = workdir_lib.load_config(path)
    det = cls(config=config, workdir=path, contamination=saved["contamination"],
              input_range=saved["input_range"])
    spec = saved["spec"]
    det._spec = spec
    if spec["kind"] == "tabular":
      # Fitting the scaler on its two extreme rows restores data_min_ / data_max_ exactly.
      det._scaler = tabular.numeric_scaler().fit(
          np.asarray([spec["scaler_min"], spec["scaler_max"]], np.float64))
    trained = workdir_lib.restore(path, tuple(spec["input_shape"]), member=member, config=config)
    det._state, det._scorer, det._member = trained.state, trained.scorer, trained.member
    det.threshold_, det.val_threshold_ = saved["threshold"], saved["val_threshold"]
    det.threshold_rows_, det.member_thresholds_ = saved["threshold_rows"], None
    if member is None:
      det.member_thresholds_ = saved["member_thresholds"]
    else:
      mine = saved["member_thresholds"][trained.member]
      det.threshold_, det.val_threshold_ = mine["threshold"], mine["val_threshold"]
    det.train_info_ = saved["train_info"]
    det.input_shape_ = tuple(spec["input_shape"])
    det.workdir_ = path
    det._fitted = True
    return det


def _combine(outs: list[dict[str, np.ndarray]], member: int | None) -> dict[str, np.ndarray]:
  """Member `member`'s outputs, or the mean over members of "score" and "map" (float32)."""
  if member is not None:
    return outs[int(member)]
  if len(outs) == 1:
    return outs[0]
  return {k: np.mean(np.stack([o[k] for o in outs]), axis=0, dtype=np.float64).astype(np.float32)
          for k in ("score", "map") if k in outs[0]}
