"""The config of the autoencoders (`methods/ae.py`): "ae" has no section, "ssim_ae" reads `ssim`."""

import ml_collections

from ganad_jax.configs.methods import spec


def ssim_config() -> ml_collections.ConfigDict:
  """Returns the `ssim` section: the SSIM window of the SSIM-AE loss and score.

  Fields:
    window: side of the Gaussian window, in pixels.
    sigma: its standard deviation, in pixels.
  """
  config = ml_collections.ConfigDict()
  config.window = 11
  config.sigma = 1.5
  return config


METHODS = {
    "ae": spec.Spec(sections={}),
    "ssim_ae": spec.Spec(sections={"ssim": ssim_config}),
}
