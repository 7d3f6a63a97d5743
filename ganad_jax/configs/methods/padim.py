"""The config of PaDiM (`methods/padim.py`): `padim`, and the backbone's `pretrained`."""

import ml_collections

from ganad_jax.configs import pretrained
from ganad_jax.configs.methods import spec

def padim_config() -> ml_collections.ConfigDict:
  """Returns the `padim` section.

  Fields:
    layers: backbone stages concatenated into the embedding; () = the
      paper's choice for the backbone: stages 2-4 of an EfficientNet (strides
      4, 8, 16), layer1-3 of a ResNet.
    channels: size d of the random channel subset; 0 = every channel.
    gaussian: "per_position" | "shared" (see the docstring of `methods/padim.py`).
    eps: added to the covariance's diagonal.
    sigma: the map's Gaussian smoothing, in input pixels; 0 = none.
    max_memory_mb: refuse configurations whose statistics need more.
  """
  config = ml_collections.ConfigDict()
  config.layers = ()
  config.channels = 100
  config.gaussian = "per_position"
  config.eps = 0.01
  config.sigma = 4.0
  config.max_memory_mb = 2048
  return config


def check(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming a `padim` field out of its range (eps > 0: issue 26)."""
  cfg = config.padim
  spec.require(cfg.eps > 0, "padim.eps", cfg.eps,
               "must be > 0: it is added to the covariance's diagonal so that every "
               "covariance can be inverted (with few samples or more channels than "
               "samples the sample covariance is singular)")
  spec.require(cfg.channels >= 0, "padim.channels", cfg.channels,
               "must be >= 0 (0 = every channel)")
  spec.require(cfg.sigma >= 0, "padim.sigma", cfg.sigma, "must be >= 0 (0 = no smoothing)")
  spec.require(cfg.max_memory_mb > 0, "padim.max_memory_mb", cfg.max_memory_mb, "must be > 0")


METHODS = {"padim": spec.Spec(sections={"padim": padim_config,
                                        "pretrained": pretrained.pretrained_config},
                              check=check)}
