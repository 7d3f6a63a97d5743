"""The config of CS-Flow (`methods/csflow.py`): `csflow`, and the backbone's `pretrained`."""

import ml_collections

from ganad_jax.configs import features
from ganad_jax.configs import pretrained
from ganad_jax.configs.methods import spec


def csflow_config() -> ml_collections.ConfigDict:
  """Returns the `csflow` section at the reference's values (marco-rudolph/cs-flow `config.py`).

  Fields:
    layer: the backbone stage read at each of the 3 scales; "" = "stage6" of
      an EfficientNet (stride 32: the reference's block 35 of B5 ends its
      stage 6), "layer3" of a ResNet. The largest scale's input is
      `pretrained.input_size` (the reference's 768 px), the others half and a
      quarter of it.
    kernels: kernel size of each coupling block's convolutions; its length
      is the number of blocks (the reference's (3, 3, 3, 5)).
    hidden: hidden channels of the cross-scale convolutions (1024).
    clamp: soft clamp of the log scales, clamp * 0.636 * atan(s / clamp) (3).
    lr, b1, b2, eps: torch's Adam as the reference sets it (2e-4, 0.9,
      0.999, 1e-4); `config.optim` is not read.
    weight_decay: torch Adam's L2 term added to the gradient (1e-5).
    max_grad_norm: the gradient's global norm is clipped to this first (1);
      0 = no clipping.
  The reference's batch is 16 (`train.batch_size`, set by the configs).
  """
  config = ml_collections.ConfigDict()
  config.layer = ""
  config.kernels = (3, 3, 3, 5)
  config.hidden = 1024
  config.clamp = 3.0
  config.lr = 2e-4
  config.b1 = 0.9
  config.b2 = 0.999
  config.eps = 1e-4
  config.weight_decay = 1e-5
  config.max_grad_norm = 1.0
  return config


def check_optimiser(cfg: ml_collections.ConfigDict, name: str) -> None:
  """ValueError naming a field of a flow method's Adam fields out of its range."""
  spec.require(cfg.lr > 0, f"{name}.lr", cfg.lr, "must be > 0")
  for field in ("b1", "b2"):
    spec.require(0 <= cfg[field] < 1, f"{name}.{field}", cfg[field], "must be in [0, 1)")
  spec.require(cfg.eps > 0, f"{name}.eps", cfg.eps, "must be > 0")
  spec.require(cfg.weight_decay >= 0, f"{name}.weight_decay", cfg.weight_decay, "must be >= 0")
  spec.require(cfg.max_grad_norm >= 0, f"{name}.max_grad_norm", cfg.max_grad_norm,
               "must be >= 0 (0 = no clipping)")


def check(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming a `csflow` field out of its range."""
  cfg = config.csflow
  spec.require(len(cfg.kernels) >= 1 and all(int(k) == k and k >= 1 and k % 2 == 1
                                              for k in cfg.kernels),
               "csflow.kernels", cfg.kernels,
               "must be one or more odd sizes >= 1 (one per coupling block)")
  spec.require(cfg.hidden >= 1, "csflow.hidden", cfg.hidden, "must be >= 1")
  spec.require(cfg.clamp >= 0, "csflow.clamp", cfg.clamp, "must be >= 0 (0 = no clamp)")
  check_optimiser(cfg, "csflow")


METHODS = {"csflow": spec.Spec(sections={"csflow": csflow_config,
                                         "pretrained": pretrained.pretrained_config,
                                         "features": features.features_config},
                               check=check)}
