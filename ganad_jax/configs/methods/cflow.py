"""The config of CFlow-AD (`methods/cflow.py`): `cflow`, `pretrained` and `features`."""

import ml_collections

from ganad_jax.configs import features
from ganad_jax.configs import pretrained
from ganad_jax.configs.methods import spec


def cflow_config() -> ml_collections.ConfigDict:
  """Returns the `cflow` section (gudovskiy/cflow-ad's defaults).

  Fields:
    layers: backbone stages ("pool layers"), one conditional flow each;
      () = a ResNet's layer2-4, an EfficientNet's stage3, stage5, stage6.
    coupling_blocks: AllInOneBlocks per flow (8).
    clamp: the coupling's soft clamp ("clamp_alpha", 1.9).
    condition_vec: channels of the 2-D positional encoding (128; a multiple of 4).
    fiber_batch: vectors per fiber batch, one Adam step each (N = 256).
    fiber_steps: fiber batches per level and train step; 0 = all of the
      batch's (B h w // fiber_batch), as the reference. The learning rate
      is `optim.lr` (the reference's 2e-4, b1 0.9).
  """
  config = ml_collections.ConfigDict()
  config.layers = ()
  config.coupling_blocks = 8
  config.clamp = 1.9
  config.condition_vec = 128
  config.fiber_batch = 256
  config.fiber_steps = 0
  return config


def check(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming a `cflow` field out of its range."""
  cfg = config.cflow
  spec.require(cfg.coupling_blocks >= 1, "cflow.coupling_blocks", cfg.coupling_blocks,
               "must be >= 1")
  spec.require(cfg.clamp > 0, "cflow.clamp", cfg.clamp, "must be > 0")
  spec.require(cfg.condition_vec > 0 and cfg.condition_vec % 4 == 0, "cflow.condition_vec",
               cfg.condition_vec, "must be a positive multiple of 4 (sin and cos of rows and "
               "columns)")
  spec.require(cfg.fiber_batch >= 1, "cflow.fiber_batch", cfg.fiber_batch, "must be >= 1")
  spec.require(cfg.fiber_steps >= 0, "cflow.fiber_steps", cfg.fiber_steps,
               "must be >= 0 (0 = every fiber batch)")


METHODS = {"cflow": spec.Spec(sections={"cflow": cflow_config,
                                        "pretrained": pretrained.pretrained_config,
                                        "features": features.features_config},
                              check=check)}
