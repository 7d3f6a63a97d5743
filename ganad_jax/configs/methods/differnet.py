"""The config of DifferNet (`methods/differnet.py`): `differnet`, and the backbone's `pretrained`."""

import ml_collections

from ganad_jax.configs import features
from ganad_jax.configs import pretrained
from ganad_jax.configs.methods import csflow
from ganad_jax.configs.methods import spec


def differnet_config() -> ml_collections.ConfigDict:
  """Returns the `differnet` section at the reference's values (marco-rudolph/differnet `config.py`).

  Fields:
    layer: the backbone stage pooled at each of the 3 scales; "" = "stage7"
      of an EfficientNet, "layer4" of a ResNet (stride 32, as AlexNet's
      `features`). The largest scale's input is `pretrained.input_size` (the
      reference's 448 px), the others half and a quarter of it.
    blocks: coupling blocks (8).
    clamp: soft clamp of the log scales (clamp_alpha, 3).
    hidden: units of the subnets' 3 hidden layers (fc_internal, 2048).
    n_views: fixed rotations by 360 k / n_views degrees of every image,
      whose features are computed once; the score averages over all of them
      (the reference's n_transforms_test, 64, random rotations there).
    n_transforms: views drawn per image in a train step (4).
    map: "gradient" (the reference's gradient map, see the method's
      docstring; a backward pass through the backbone for every view) or
      "none" (image scores only).
    map_sigma: the gradient map's Gaussian smoothing in input pixels (3).
    lr, b1, b2, eps: torch's Adam as the reference sets it (2e-4, 0.8, 0.8,
      1e-4); `config.optim` is not read.
    weight_decay: torch Adam's L2 term (1e-5).
    max_grad_norm: gradient clipping (0: none, as the reference).
  The reference's batch is 24 images (`train.batch_size`, set by the configs).
  """
  config = ml_collections.ConfigDict()
  config.layer = ""
  config.blocks = 8
  config.clamp = 3.0
  config.hidden = 2048
  config.n_views = 64
  config.n_transforms = 4
  config.map = "gradient"
  config.map_sigma = 3.0
  config.lr = 2e-4
  config.b1 = 0.8
  config.b2 = 0.8
  config.eps = 1e-4
  config.weight_decay = 1e-5
  config.max_grad_norm = 0.0
  return config


def check(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming a `differnet` field out of its range."""
  cfg = config.differnet
  for field in ("blocks", "hidden", "n_views", "n_transforms"):
    spec.require(cfg[field] >= 1, f"differnet.{field}", cfg[field], "must be >= 1")
  spec.require(cfg.clamp >= 0, "differnet.clamp", cfg.clamp, "must be >= 0 (0 = no clamp)")
  spec.require(cfg.map_sigma >= 0, "differnet.map_sigma", cfg.map_sigma,
               "must be >= 0 (0 = no smoothing)")
  csflow.check_optimiser(cfg, "differnet")


METHODS = {"differnet": spec.Spec(sections={"differnet": differnet_config,
                                            "pretrained": pretrained.pretrained_config,
                                            "features": features.features_config},
                                  check=check)}
