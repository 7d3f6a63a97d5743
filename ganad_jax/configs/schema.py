"""The config of a method (`base_config`) assembled from its sections; `validate`; `from_dict`.

Every `configs/<name>.py` starts from `base_config(method)`, directly or through
another config file (`files.sibling_config`, then `with_method` when the method
changes), and changes fields; no field is ever added elsewhere, so an unknown
field (a typo) is an error. A config holds the shared sections (data, model,
optim, train, eval, patch, ensemble, mesh) and its own method's sections
(`configs/methods/`), no other method's. Each section's defaults live in the
module named beside it below; the methods read them.
"""

import ml_collections

from ganad_jax.configs import data
from ganad_jax.configs import ensemble
from ganad_jax.configs import mesh
from ganad_jax.configs import methods
from ganad_jax.configs import model
from ganad_jax.configs import patch
from ganad_jax.configs import train

DEFAULT_METHOD = "ae"


def base_config(method: str = DEFAULT_METHOD) -> ml_collections.ConfigDict:
  """Every field of an experiment of `method`, with the defaults of the GANomaly paper where it has one.

  Top-level fields:
    method: a name of `configs.methods.NAMES` (= `ganad_jax.methods.NAMES`).
    seed: the run's root seed (data split, init, batches, noise).
    compute_dtype: the dtype the networks compute in; parameters and
      optimiser states stay float32.
    conv_lowering: "auto": convolutions in the forms XLA:CPU differentiates
      fastest (xla_cpu/fast_conv.py) on CPU, XLA's own elsewhere; "cpu" or
      "xla" force one. Changes speed and float32 summation order, never the
      model.

  Raises:
    ValueError: an unknown method.
  """
  methods.get(method)
  config = ml_collections.ConfigDict()
  config.method = method
  config.seed = 0
  config.compute_dtype = "float32"
  config.conv_lowering = "auto"
  config.data = data.data_config()
  config.model = model.model_config()
  config.optim = train.optim_config()
  config.train = train.train_config()
  config.eval = train.eval_config()
  methods.add_sections(config, method)
  config.patch = patch.patch_config()
  config.ensemble = ensemble.ensemble_config()
  config.mesh = mesh.mesh_config()
  return config


def from_dict(values: dict, source: str = "config.json",
              method: str | None = None) -> ml_collections.ConfigDict:
  """The config of `values` (a `to_dict()` / JSON form) for `method` (default: values' own).

  Fields of other methods' sections are skipped: config.json files written
  before a config held its own method's sections only hold every method's.

  Raises:
    ValueError: an unknown method, or a field of `values` (read from `source`)
      that is in no section of any method.
  """
  method = values.get("method", DEFAULT_METHOD) if method is None else method
  config = base_config(method)
  _update(config, values, "", method, source)
  config.method = method
  return config


def with_method(config: ml_collections.ConfigDict, method: str) -> ml_collections.ConfigDict:
  """A copy of `config` for `method`: the sections both read kept, the others dropped.

  What switches a config's method (a config file built on another's, a
  benchmark's grid of methods): the shared sections and the sections both
  methods read (e.g. `pretrained` from the Gaussian to PaDiM) keep their
  values; `method`'s other sections get their defaults.
  """
  return from_dict(config.to_dict(), "the config", method)


def _update(config, values: dict, prefix: str, method: str, source: str) -> None:
  for key, value in values.items():
    name = prefix + key
    if key not in config:
      if methods.is_foreign(name, method):
        continue
      raise ValueError(f"config.{name} in {source} is not a known config field.")
    if isinstance(config[key], ml_collections.ConfigDict):
      _update(config[key], value, name + ".", method, source)
    else:
      config[key] = tuple(value) if isinstance(value, list) else value


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks `config` against `base_config(config.method)` and the method's own check.

  Raises:
    ValueError: an unknown method; a field that the method's config does not
      have (a typo, or a field of another method's section); a section of the
      method missing (the method was changed after the config was built); a
      `patch` setting the data cannot take (`patch.validate`); a value the
      method refuses (its `Spec.check`, e.g. padim.eps <= 0). Each names the
      field.
  """
  registration = methods.get(config.method)
  reference = base_config(config.method)
  _check_fields(config, reference, "", config.method)
  for path in registration.sections:
    node = config
    for part in path.split("."):
      if part not in node:
        raise ValueError(
            f"config.method={config.method!r} reads the section config.{path}, which this "
            "config lacks: it was built for another method. Choose the method where the "
            f"config is built: a config file's argument (e.g. configs/test.py:method="
            f"{config.method}) or configs.with_method(config, {config.method!r}).")
      node = node[part]
  patch.validate(config)
  if registration.check is not None:
    registration.check(config)


def _check_fields(config, reference, prefix, method):
  for key, value in config.items():
    name = prefix + key
    if key not in reference:
      if methods.is_foreign(name, method):
        raise ValueError(
            f"config.{name} belongs to method {' / '.join(methods.owners(name))}, not to "
            f"config.method={method!r}: a config holds its own method's sections only. "
            "Remove it, or build the config for that method.")
      where = f"config.{prefix[:-1]}" if prefix else "config"
      raise ValueError(f"Unknown config field 'config.{name}'; known fields of {where}: "
                       f"{', '.join(sorted(reference.keys()))}.")
    if isinstance(value, ml_collections.ConfigDict):
      _check_fields(value, reference[key], name + ".", method)
