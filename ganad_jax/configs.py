"""The base experiment config, its validation and the blocks configs share.

Every `configs/<name>.py` starts from `base_config()`, directly or through
another config file (`sibling_config`), and changes fields; no field is ever
added elsewhere, so an unknown field (a typo) is an error. The helpers below set
the groups of fields that several config files share (a data set, a search).
"""

import importlib.util
import json
import os

import ml_collections

from ganad_jax import data
from ganad_jax import ensemble
from ganad_jax import sharding
from ganad_jax.methods import anogan
from ganad_jax.methods import backbone
from ganad_jax.methods import egbad
from ganad_jax.methods import gaussian
from ganad_jax.methods import padim
from ganad_jax.methods import vae
from ganad_jax.methods import ganomaly
from ganad_jax.methods import skip_ganomaly


def base_config() -> ml_collections.ConfigDict:
  """All fields of an experiment, with the defaults of the GANomaly paper where it has one."""
  config = ml_collections.ConfigDict()
  config.method = "ae"
  config.seed = 0
  config.compute_dtype = "float32"  # Parameters and optimiser states stay float32.
  # "auto": convolutions in the forms XLA:CPU differentiates fastest
  # (models/fast_conv.py) on CPU, XLA's own elsewhere; "cpu" or "xla" force
  # one. Changes speed and float32 summation order, never the model.
  config.conv_lowering = "auto"
  config.data = data.default_config()

  config.model = ml_collections.ConfigDict()
  config.model.nz = 100  # Latent size.
  config.model.base_features = 64  # Channels of the first conv; doubled per halving.
  config.model.mlp_widths = (64, 32)  # Hidden widths for tabular inputs.
  config.model.discriminator = "dcgan"  # Image discriminator: "dcgan" or "patch" (PatchGAN).
  config.model.patch_layers = 3  # Stride-2 layers of the patch discriminator (3: 70x70).

  config.optim = ml_collections.ConfigDict()
  config.optim.lr = 2e-4
  config.optim.b1 = 0.5
  config.optim.b2 = 0.999

  config.train = ml_collections.ConfigDict()
  config.train.batch_size = 64
  config.train.num_epochs = 15.0
  config.train.num_steps = 0  # > 0 overrides num_epochs.
  config.train.log_every = 50  # Steps between logs and finiteness checks.
  config.train.checkpoint_every = 500  # Steps between checkpoints (and at the end).
  config.train.max_checkpoints = 2
  config.train.image_grid_size = 16  # Test images in the TensorBoard grids.
  # Model selection on validation normals only (never test labels): every
  # `eval_every` steps (0 = off, fixed budget), keep the state with the lowest
  # mean `score` output on the validation split; stop after `patience`
  # evaluations without an improvement larger than `min_delta`.
  config.train.early_stopping = ml_collections.ConfigDict()
  config.train.early_stopping.eval_every = 0
  config.train.early_stopping.patience = 5
  config.train.early_stopping.min_delta = 0.0
  config.train.early_stopping.score = "score"

  config.eval = ml_collections.ConfigDict()
  config.eval.batch_size = 256
  config.eval.threshold_quantile = 0.95  # Threshold = this quantile of validation-normal scores.

  config.ssim = ml_collections.ConfigDict()
  config.ssim.window = 11
  config.ssim.sigma = 1.5
  config.anogan = anogan.default_config()
  config.egbad = egbad.default_config()
  config.vae = vae.default_config()
  config.gaussian = gaussian.default_config()
  config.padim = padim.default_config()
  config.pretrained = backbone.default_config()  # The ImageNet backbone of gaussian / padim.
  config.ganomaly = ganomaly.default_config()
  config.skip_ganomaly = skip_ganomaly.default_config()
  config.ensemble = ensemble.default_config()  # Seeds x grid in one vmapped program.
  config.mesh = sharding.default_config()  # Devices: ("members", "data") mesh axes.
  return config


def shared_data_path(config_file: str, name: str) -> str:
  """The data folder `name` in ../shared/data beside the repository of `config_file`.

  Args:
    config_file: a config file's `__file__` (any file one folder below the
      repository root).
    name: the folder under shared/data, e.g. "magnetic_tile".

  Returns:
    The absolute, normalised path, the same wherever the command runs from.
  """
  return os.path.normpath(os.path.join(
      os.path.dirname(os.path.abspath(config_file)), "..", "..", "shared", "data", name))


def sibling_config(config_file: str, name: str, *args) -> ml_collections.ConfigDict:
  """`get_config(*args)` of the config file `name`.py in the folder of `config_file`.

  Loaded by path: `ml_collections.config_flags` loads config files without the
  repository root on sys.path, so `import configs.<name>` would fail there.

  Args:
    config_file: the calling config file's `__file__`.
    name: the other config file's name without ".py", e.g. "ae_digits".
    *args: passed on to its `get_config`.

  Returns:
    A fresh ConfigDict, the caller's to change.
  """
  path = os.path.join(os.path.dirname(os.path.abspath(config_file)), name + ".py")
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(*args)


def digits_anomaly_class(config: ml_collections.ConfigDict, arg: str | None = None) -> None:
  """Sets `config.data` to GANomaly's anomaly_class protocol on scikit-learn's digits.

  One digit is the anomaly, the other nine are normal; the loader resizes the
  8x8 grayscale digits to 16x16 (bilinear).

  Args:
    config: an experiment config, changed in place.
    arg: the anomalous digit as a config file's argument ("3"); None or "": 0.
  """
  config.data.source = "digits"
  config.data.protocol = "anomaly_class"
  config.data.class_index = int(arg) if arg else 0
  config.data.image_size = 16  # The smallest size the nets take; digits are 8x8.
  config.data.channels = 1


def magnetic_tile_folder(config: ml_collections.ConfigDict, path: str) -> None:
  """Sets `config.data` to an MVTec-AD-style folder of grayscale photos at 64x64.

  The magnetic-tile configs' data: train on train/good, test on test/*, pixel
  metrics from the ground-truth masks.

  Args:
    config: an experiment config, changed in place.
    path: the category folder (Magnetic-Tile-Defect or any MVTec AD category).
  """
  config.data.source = "folder"
  config.data.protocol = "folder"
  config.data.path = path
  config.data.image_size = 64  # Photos of 103-632 x 222-403 px, resized (bilinear).
  config.data.channels = 1
  # 4 `uneven` photos of Magnetic-Tile-Defect have all-zero masks in their
  # files: kept as anomalous images with empty masks, and named in the notes.
  config.data.empty_masks = "keep"


def breast_cancer_table(config: ml_collections.ConfigDict) -> None:
  """Sets the data of the breast-cancer configs and the batch sizes that suit them.

  scikit-learn's bundled breast-cancer table, protocol anomaly_class with the
  malignant rows as the anomaly. Batches of 32 for the 257 training rows and
  512 for evaluation (all 283 test rows in one batch).

  Args:
    config: an experiment config, changed in place.
  """
  config.data.source = "sklearn_tabular"
  config.data.sklearn_name = "breast_cancer"
  config.data.protocol = "anomaly_class"
  config.data.class_name = "malignant"
  config.train.batch_size = 32
  config.eval.batch_size = 512


def anogan_search(config: ml_collections.ConfigDict, steps: int, lr: float,
                  schedule: str = "constant") -> None:
  """Sets AnoGAN's latent search: Adam from z = 0, lambda 0.1 on D's penultimate features.

  Args:
    config: an experiment config, changed in place.
    steps: optimisation steps per sample.
    lr: Adam's (initial) learning rate.
    schedule: "constant" or "piecewise" (see `latent_search.default_config`).
  """
  search = config.anogan.search
  search.steps = steps
  search.lr = lr
  search.schedule = schedule
  search.init = "zeros"
  search.lam = 0.1
  search.feature_layer = "penultimate"


# Which runs are the same run. Two configs make the same run when every field
# is equal except these, which never change what a run computes or reports
# (up to float32 summation order): how the work is laid out (devices and mesh,
# the CPU convolution lowering, vmap or unroll of an ensemble, the scoring
# batch), how often it logs and saves, the size of the TensorBoard image
# grid, and where pretrained weights are cached or fetched from (the state
# holds the weights themselves). A finished run is reused only for a config equal to its own but for
# these (`workdir.finished_results`).
RESULT_NEUTRAL_FIELDS = (
    "conv_lowering", "mesh", "ensemble.batching", "eval.batch_size", "train.log_every",
    "train.checkpoint_every", "train.max_checkpoints", "train.image_grid_size",
    "pretrained.cache_dir", "pretrained.allow_download")
# A checkpoint is resumed by a config equal to the one that wrote it but for
# RESULT_NEUTRAL_FIELDS and these, which cannot change the state at a given
# step: the run's length (step s's batch and key depend only on (seed, s), so
# a longer run extends the same trajectory), what is done after training (the
# threshold quantile) and where the data are read from (the checkpoint records
# a digest of the data training saw, which must match).
RESUME_NEUTRAL_FIELDS = RESULT_NEUTRAL_FIELDS + (
    "train.num_steps", "train.num_epochs", "eval.threshold_quantile", "data.path",
    "data.data_dir")


def flatten(values: dict, prefix: str = "") -> dict:
  """{"data": {"class_index": 3}} -> {"data.class_index": 3}, values in their JSON form."""
  out = {}
  for key, value in values.items():
    name = f"{prefix}{key}"
    if isinstance(value, (dict, ml_collections.ConfigDict)):
      out.update(flatten(dict(value), name + "."))
    else:
      out[name] = json.loads(json.dumps(value))  # Tuples become lists, as read back from disk.
  return out


def run_record(config, neutral: tuple[str, ...]) -> dict:
  """Every field of `config` (dotted names) except those named or under a section in `neutral`."""
  return {name: value for name, value in flatten(config.to_dict()).items()
          if not any(name == n or name.startswith(n + ".") for n in neutral)}


def differing_fields(a: dict, b: dict) -> list[str]:
  """Sorted names whose values differ between two flat records (a missing name differs)."""
  missing = object()
  return sorted(k for k in set(a) | set(b) if a.get(k, missing) != b.get(k, missing))


def describe(record: dict, names: list[str]) -> str:
  """'data.class_index=0, seed=0': `names` with their values in `record` (digests shortened)."""
  def value(name):
    if name not in record:
      return "<unset>"
    v = record[name]
    if name.endswith("sha256") and isinstance(v, str):
      return v[:12] + "..."
    return json.dumps(v)
  return ", ".join(f"{name}={value(name)}" for name in names)


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the first field that `base_config()` does not have."""
  _check_fields(config, base_config(), "config")


def _check_fields(config, reference, prefix):
  for key, value in config.items():
    name = f"{prefix}.{key}"
    if key not in reference:
      raise ValueError(f"Unknown config field {name!r}; known fields of {prefix}: "
                       f"{', '.join(sorted(reference.keys()))}.")
    if isinstance(value, ml_collections.ConfigDict):
      _check_fields(value, reference[key], name)
