"""The config of the VAE (`methods/vae.py`): the `vae` section."""

import ml_collections

from ganad_jax.configs.methods import spec

def vae_config() -> ml_collections.ConfigDict:
  """Returns the `vae` section.

  Fields:
    beta: weight of the KL term in the training loss (1 = the ELBO).
    sigma: standard deviation of the Gaussian decoder, fixed. Images are in
      [-1, 1]; 0.1 keeps the reconstruction term from being swamped by the KL
      (a large sigma lets the posterior collapse to the prior).
    num_score_samples: draws of z per sample for "score_elbo".
  """
  config = ml_collections.ConfigDict()
  config.beta = 1.0
  config.sigma = 0.1
  config.num_score_samples = 16
  return config


METHODS = {"vae": spec.Spec(sections={"vae": vae_config})}
