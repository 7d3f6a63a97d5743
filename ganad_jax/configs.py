"""The base experiment config and its validation.

Every `configs/<name>.py` starts from `base_config()` and changes fields; no
field is ever added elsewhere, so an unknown field (a typo) is an error.
"""

import ml_collections

from ganad_jax import data
from ganad_jax import ensemble
from ganad_jax import sharding
from ganad_jax.methods import anogan
from ganad_jax.methods import egbad
from ganad_jax.methods import gaussian
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
  config.ganomaly = ganomaly.default_config()
  config.skip_ganomaly = skip_ganomaly.default_config()
  config.ensemble = ensemble.default_config()  # Seeds x grid in one vmapped program.
  config.mesh = sharding.default_config()  # Devices: ("members", "data") mesh axes.
  return config


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
