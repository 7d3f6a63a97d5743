"""The config of FastFlow (`methods/fastflow.py`): `fastflow`, `pretrained` and `features`."""

import ml_collections

from ganad_jax.configs import features
from ganad_jax.configs import pretrained
from ganad_jax.configs.methods import spec


def fastflow_config() -> ml_collections.ConfigDict:
  """Returns the `fastflow` section (gathierry/FastFlow's defaults).

  Fields:
    layers: backbone stages, one flow each; () = a ResNet's layer1-3, an
      EfficientNet's stage2, stage3, stage5 (strides 4, 8, 16).
    flow_steps: AllInOneBlocks per stage (the reference's 8).
    conv3x3_only: every subnet 3x3 (the reference's ResNet-18 setting);
      False = 3x3 and 1x1 alternating (its Wide-ResNet-50 setting, the paper's).
    hidden_ratio: subnet hidden channels / input channels (1.0).
    clamp: the coupling's soft clamp (2.0).
    weight_decay: Adam's L2 weight decay (1e-5). The learning rate is
      `optim.lr` (the reference's 1e-3 with b1 = 0.9; the tile configs set them).
  """
  config = ml_collections.ConfigDict()
  config.layers = ()
  config.flow_steps = 8
  config.conv3x3_only = False
  config.hidden_ratio = 1.0
  config.clamp = 2.0
  config.weight_decay = 1e-5
  return config


def check(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming a `fastflow` field out of its range."""
  cfg = config.fastflow
  spec.require(cfg.flow_steps >= 1, "fastflow.flow_steps", cfg.flow_steps, "must be >= 1")
  spec.require(cfg.hidden_ratio > 0, "fastflow.hidden_ratio", cfg.hidden_ratio, "must be > 0")
  spec.require(cfg.clamp > 0, "fastflow.clamp", cfg.clamp, "must be > 0")
  spec.require(cfg.weight_decay >= 0, "fastflow.weight_decay", cfg.weight_decay, "must be >= 0")


METHODS = {"fastflow": spec.Spec(sections={"fastflow": fastflow_config,
                                            "pretrained": pretrained.pretrained_config,
                                            "features": features.features_config},
                                  check=check)}
