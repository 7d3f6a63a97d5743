"""The whole config (`base_config`) assembled from its sections, and `validate`.

Every `configs/<name>.py` starts from `base_config()`, directly or through
another config file (`files.sibling_config`), and changes fields; no field is
ever added elsewhere, so an unknown field (a typo) is an error. Each section's
defaults live in the module named beside it below; the methods read them.
"""

import ml_collections

from ganad_jax.configs import data
from ganad_jax.configs import ensemble
from ganad_jax.configs import mesh
from ganad_jax.configs import methods
from ganad_jax.configs import model
from ganad_jax.configs import patch
from ganad_jax.configs import pretrained
from ganad_jax.configs import train


def base_config() -> ml_collections.ConfigDict:
  """All fields of an experiment, with the defaults of the GANomaly paper where it has one.

  Top-level fields:
    method: a name of `ganad_jax.methods.NAMES`.
    seed: the run's root seed (data split, init, batches, noise).
    compute_dtype: the dtype the networks compute in; parameters and
      optimiser states stay float32.
    conv_lowering: "auto": convolutions in the forms XLA:CPU differentiates
      fastest (xla_cpu/fast_conv.py) on CPU, XLA's own elsewhere; "cpu" or
      "xla" force one. Changes speed and float32 summation order, never the
      model.
  """
  config = ml_collections.ConfigDict()
  config.method = "ae"
  config.seed = 0
  config.compute_dtype = "float32"
  config.conv_lowering = "auto"
  config.data = data.data_config()
  config.model = model.model_config()
  config.optim = train.optim_config()
  config.train = train.train_config()
  config.eval = train.eval_config()
  config.ssim = methods.ssim_config()
  config.anogan = methods.anogan_config()
  config.egbad = methods.egbad_config()
  config.vae = methods.vae_config()
  config.gaussian = methods.gaussian_config()
  config.padim = methods.padim_config()
  config.pretrained = pretrained.pretrained_config()
  config.ganomaly = methods.ganomaly_config()
  config.skip_ganomaly = methods.skip_ganomaly_config()
  config.patch = patch.patch_config()
  config.ensemble = ensemble.ensemble_config()
  config.mesh = mesh.mesh_config()
  return config


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the first field that `base_config()` does not have.

  Then checks the `patch` section against the data (`patch.validate`).
  """
  _check_fields(config, base_config(), "config")
  patch.validate(config)


def _check_fields(config, reference, prefix):
  for key, value in config.items():
    name = f"{prefix}.{key}"
    if key not in reference:
      raise ValueError(f"Unknown config field {name!r}; known fields of {prefix}: "
                       f"{', '.join(sorted(reference.keys()))}.")
    if isinstance(value, ml_collections.ConfigDict):
      _check_fields(value, reference[key], name)
