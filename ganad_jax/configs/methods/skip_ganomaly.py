"""The config of Skip-GANomaly (`methods/skip_ganomaly.py`): the `skip_ganomaly` section."""

import ml_collections

from ganad_jax.configs.methods import spec

def skip_ganomaly_config() -> ml_collections.ConfigDict:
  """Returns the `skip_ganomaly` section.

  Fields:
    w_adv: weight of G's adversarial loss BCE(D(x_hat), 1).
    w_con: weight of the contextual L1 loss mean|x - x_hat|.
    w_lat: weight of the latent loss mean((f_D(x) - f_D(x_hat))^2).
    score_lambda: score = lambda * rec + (1 - lambda) * feature.
    score_rec: "l2" (reference code) or "l1" (paper) residual in rec and the map.
    reinit_d_below: re-initialise D when its loss is below this (0 disables).
  """
  config = ml_collections.ConfigDict()
  config.w_adv = 1.0
  config.w_con = 50.0
  config.w_lat = 1.0
  config.score_lambda = 0.9
  config.score_rec = "l2"
  config.reinit_d_below = 1e-5
  return config


METHODS = {"skip_ganomaly": spec.Spec(sections={"skip_ganomaly": skip_ganomaly_config})}
