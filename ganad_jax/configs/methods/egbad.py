"""The config of EGBAD (`methods/egbad.py`): `egbad`, and AnoGAN's `anogan.search` for search_steps."""

import ml_collections

from ganad_jax.configs.methods import anogan
from ganad_jax.configs.methods import spec

def egbad_config() -> ml_collections.ConfigDict:
  """Returns the `egbad` section.

  Fields:
    nets: 'dcgan' (DCGAN G and E, the joint D's x branch a DCGAN conv stack;
      MLPs for vectors) | 'zenati' (EGBAD's own MNIST G, E and D x branch,
      houssamzenati/Efficient-GAN-Anomaly-Detection bigan/mnist_utilities.py;
      images only; `models.bigan`).
    d_negative_slope: slope of the joint D's LeakyReLUs (EGBAD's: 0.1).
    d_dropout: dropout rate after every hidden layer of the joint D in train
      mode (EGBAD's: 0.5; 0 = none).
    ema_decay: decay of the parameters' moving average used for scoring.
    ema_warmup: True: the decay at step t is min(ema_decay, (1 + t) / (10 +
      t)) (TF's ExponentialMovingAverage with num_updates), so that a short
      run is not scored with nearly initial weights; False: the constant
      ema_decay from the initial weights (EGBAD's code).
    feature_weight: w of the score, (1 - w) * residual + w * feature distance.
    feature_layer: D layer of the score's feature distance ('penultimate' = the
      joint layer, 'z', or 'block<i>' of the x branch).
    g_widths: hidden widths of the tabular generator (latent -> ... -> F).
    e_widths: hidden widths of the tabular encoder (F -> ... -> latent).
    d_widths: hidden widths of the tabular discriminator's x branch.
    d_z_features: width of the discriminator's z branch.
    d_joint_features: width of the discriminator's joint layer.
    search_steps: > 0 also scores with an encoder-initialised latent search
      ("score_search") of that many steps (`config.anogan.search`); 0 = off.
  """
  config = ml_collections.ConfigDict()
  config.nets = "dcgan"
  config.d_negative_slope = 0.2
  config.d_dropout = 0.0
  config.ema_decay = 0.999
  config.ema_warmup = True
  config.feature_weight = 0.1
  config.feature_layer = "penultimate"
  config.g_widths = (32, 64)
  config.e_widths = (64, 32)
  config.d_widths = (64, 32)
  config.d_z_features = 512
  config.d_joint_features = 1024
  config.search_steps = 0
  return config


def encoder_search(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`anogan.search` with `egbad.search_steps` steps, started from the encoder's z (a copy)."""
  search = ml_collections.ConfigDict(config.anogan.search.to_dict())
  search.steps = int(config.egbad.search_steps)
  search.init = "encoder"
  return search


def check(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming an `egbad` field (or, with search_steps, `anogan.search`'s) out of range."""
  cfg = config.egbad
  if not 0.0 <= cfg.feature_weight <= 1.0:
    raise ValueError(f"egbad.feature_weight must lie in [0, 1]; got {cfg.feature_weight}.")
  if not 0.0 <= cfg.ema_decay < 1.0:
    raise ValueError(f"egbad.ema_decay must lie in [0, 1); got {cfg.ema_decay}.")
  if not 0.0 <= cfg.d_dropout < 1.0:
    raise ValueError(f"egbad.d_dropout must lie in [0, 1); got {cfg.d_dropout}.")
  if cfg.search_steps < 0:
    raise ValueError(f"egbad.search_steps must be >= 0 (0 = off); got {cfg.search_steps}.")
  if cfg.search_steps > 0:
    anogan.check_search(encoder_search(config), "anogan.search")


# The encoder-initialised search of `search_steps` is AnoGAN's: EGBAD reads
# `anogan.search` (not the rest of `anogan`).
METHODS = {"egbad": spec.Spec(sections={"egbad": egbad_config,
                                        "anogan.search": anogan.search_config},
                              check=check)}
