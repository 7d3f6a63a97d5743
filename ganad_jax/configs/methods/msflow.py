"""The config of MSFlow (`methods/msflow.py`): `msflow`, `pretrained` and `features`."""

import ml_collections

from ganad_jax.configs import features
from ganad_jax.configs import pretrained
from ganad_jax.configs.methods import spec


def msflow_config() -> ml_collections.ConfigDict:
  """Returns the `msflow` section (cool-xuan/msflow's `default.py`).

  Fields:
    layers: backbone stages, one parallel flow each (even channel counts);
      () = a ResNet's layer1-3, an EfficientNet's stage2, stage3, stage5.
    parallel_blocks: AllInOneBlocks of each stage's parallel flow ((2, 5, 8)).
    c_conds: positional-encoding channels of each stage ((64, 64, 64); multiples of 4).
    clamp: the soft clamp of every coupling ("clamp_alpha", 1.9).
    grad_clip: the gradients' global norm is clipped to this (2); 0 = none.
    top_k: the image score averages this fraction of the map's highest pixels (0.03).
      The learning rate is `optim.lr` (the reference's 1e-4, b1 0.9).
  """
  config = ml_collections.ConfigDict()
  config.layers = ()
  config.parallel_blocks = (2, 5, 8)
  config.c_conds = (64, 64, 64)
  config.clamp = 1.9
  config.grad_clip = 2.0
  config.top_k = 0.03
  return config


def check(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming a `msflow` field out of its range."""
  cfg = config.msflow
  spec.require(all(b >= 1 for b in cfg.parallel_blocks), "msflow.parallel_blocks",
               tuple(cfg.parallel_blocks), "must all be >= 1")
  spec.require(all(c > 0 and c % 4 == 0 for c in cfg.c_conds), "msflow.c_conds",
               tuple(cfg.c_conds), "must all be positive multiples of 4")
  spec.require(cfg.clamp > 0, "msflow.clamp", cfg.clamp, "must be > 0")
  spec.require(cfg.grad_clip >= 0, "msflow.grad_clip", cfg.grad_clip, "must be >= 0 (0 = none)")
  spec.require(0 < cfg.top_k <= 1, "msflow.top_k", cfg.top_k, "must be in (0, 1]")


METHODS = {"msflow": spec.Spec(sections={"msflow": msflow_config,
                                         "pretrained": pretrained.pretrained_config,
                                         "features": features.features_config},
                               check=check)}
