"""The config of GANomaly (`methods/ganomaly.py`): the `ganomaly` section."""

import ml_collections

from ganad_jax.configs.methods import spec

def ganomaly_config() -> ml_collections.ConfigDict:
  """Returns the `ganomaly` section.

  Fields:
    w_adv: weight of the feature-matching (adversarial) generator loss.
    w_con: weight of the contextual L1 loss mean|x - x_hat|.
    w_enc: weight of the latent loss mean((z - z_hat)^2).
    reinit_d_below: re-initialise D when its loss is below this (0 disables).
  """
  config = ml_collections.ConfigDict()
  config.w_adv = 1.0
  config.w_con = 50.0
  config.w_enc = 1.0
  config.reinit_d_below = 1e-5
  return config


METHODS = {"ganomaly": spec.Spec(sections={"ganomaly": ganomaly_config})}
