"""The config of the Gaussian scorer (`methods/gaussian.py`): `gaussian`, and `pretrained`."""

import ml_collections

from ganad_jax.configs import pretrained
from ganad_jax.configs.methods import spec

FEATURES = ("pixels", "workdir", "pretrained", "flax_file")  # gaussian.features.
POOLS = ("mean", "flatten")  # gaussian.pool.


def gaussian_config() -> ml_collections.ConfigDict:
  """Returns the `gaussian` section.

  Fields:
    features: 'pixels' | 'workdir' | 'pretrained' | 'flax_file' (see the
      docstring of `methods/gaussian.py`; 'pretrained' reads the config
      section `pretrained`).
    workdir: features 'workdir': the trained ganad_jax run.
    net: features 'workdir': 'encoder' or 'discriminator'.
    member: features 'workdir' on an ensemble workdir: the member k whose net
      is used; -1 (default) = the workdir must be a single run.
    module: features 'flax_file': "package.module:Class" of a flax.linen module.
    module_kwargs: features 'flax_file': JSON object of the constructor's arguments.
    call_kwargs: features 'flax_file': JSON object of extra `__call__` arguments.
    weights: features 'flax_file': msgpack file of the module's variables.
    layers: layer names; () = every layer the net returns.
    pool: 'mean' (global average) | 'flatten' for conv maps (N, H, W, C).
    squared: sum squared Mahalanobis distances instead of distances.
    select_levels: k > 0 keeps the k layers that best tell the validation
      normals from CutPaste copies of them; 0 sums every layer.
    max_features: refuse a layer wider than this (its covariance is D x D).
  """
  config = ml_collections.ConfigDict()
  config.features = "pixels"
  config.workdir = ""
  config.net = "encoder"
  config.member = -1
  config.module = ""
  config.module_kwargs = "{}"
  config.call_kwargs = "{}"
  config.weights = ""
  config.layers = ()
  config.pool = "mean"
  config.squared = False
  config.select_levels = 0
  config.max_features = 4096
  return config


def check(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming a `gaussian` field out of its range.

  The covariance needs no regulariser field: Ledoit-Wolf shrinks it by an
  amount estimated from the data, and the precision drops eigenvalues below
  scipy's pinvh cutoff (`methods/gaussian.py`).
  """
  cfg = config.gaussian
  if cfg.features not in FEATURES:
    raise ValueError(f"gaussian.features must be one of {FEATURES}; got {cfg.features!r}.")
  if cfg.pool not in POOLS:
    raise ValueError(f"gaussian.pool must be one of {POOLS}; got {cfg.pool!r}.")
  spec.require(cfg.max_features > 0, "gaussian.max_features", cfg.max_features, "must be > 0")
  spec.require(cfg.select_levels >= 0, "gaussian.select_levels", cfg.select_levels,
               "must be >= 0 (0 sums every layer)")
  spec.require(cfg.member >= -1, "gaussian.member", cfg.member,
               "must be >= 0, or -1 for a single-run workdir")


# features='pretrained' reads the backbone of the `pretrained` section.
METHODS = {"gaussian": spec.Spec(sections={"gaussian": gaussian_config,
                                           "pretrained": pretrained.pretrained_config},
                                 check=check)}
