"""The config of PatchCore (`methods/patchcore.py`): `patchcore`, and the backbone's `pretrained`."""

import ml_collections

from ganad_jax.configs import pretrained
from ganad_jax.configs.methods import spec


def patchcore_config() -> ml_collections.ConfigDict:
  """Returns the `patchcore` section (defaults: the paper's and its reference code's).

  Fields:
    layers: the two backbone stages of the patch features; () = the paper's
      choice for the backbone: layer2 + layer3 of a ResNet (strides 8, 16),
      stage3 + stage5 of an EfficientNet (its last stride-8 and stride-16 stages).
    dim: the features are adaptive-average-pooled over channels to this many
      when wider (the reference's target_embed_dimension, 1024).
    coreset_ratio: the coreset keeps int(ratio x training patches) rows
      (the paper's PatchCore-10 % and -1 %), in (0, 1].
    bank_capacity: rows of the state's bank (its shape is fixed when the
      method is built; `fit` refuses a larger coreset and names the size).
    num_neighbors: b of the paper's image-score reweighting (anomalib's 9);
      1 = the largest patch distance alone (the reference code's score).
    sigma: the map's Gaussian smoothing, in input pixels (the reference's 4); 0 = none.
    chunk_mb: the nearest-neighbour search computes distance matrices of at most this size.
    max_memory_mb: refuse a fit whose patch features and bank need more.
  """
  config = ml_collections.ConfigDict()
  config.layers = ()
  config.dim = 1024
  config.coreset_ratio = 0.1
  config.bank_capacity = 16384
  config.num_neighbors = 9
  config.sigma = 4.0
  config.chunk_mb = 64
  config.max_memory_mb = 4096
  return config


def check(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming a `patchcore` field out of its range."""
  cfg = config.patchcore
  spec.require(len(cfg.layers) in (0, 2), "patchcore.layers", cfg.layers,
               "must name two backbone stages (or be () for the paper's)")
  spec.require(cfg.dim >= 1, "patchcore.dim", cfg.dim, "must be >= 1")
  spec.require(0 < cfg.coreset_ratio <= 1, "patchcore.coreset_ratio", cfg.coreset_ratio,
               "must be in (0, 1]")
  spec.require(cfg.bank_capacity >= 1, "patchcore.bank_capacity", cfg.bank_capacity,
               "must be >= 1")
  spec.require(cfg.num_neighbors >= 1, "patchcore.num_neighbors", cfg.num_neighbors,
               "must be >= 1")
  spec.require(cfg.sigma >= 0, "patchcore.sigma", cfg.sigma, "must be >= 0 (0 = no smoothing)")
  spec.require(cfg.chunk_mb > 0, "patchcore.chunk_mb", cfg.chunk_mb, "must be > 0")
  spec.require(cfg.max_memory_mb > 0, "patchcore.max_memory_mb", cfg.max_memory_mb,
               "must be > 0")


METHODS = {"patchcore": spec.Spec(sections={"patchcore": patchcore_config,
                                            "pretrained": pretrained.pretrained_config},
                                  check=check)}
