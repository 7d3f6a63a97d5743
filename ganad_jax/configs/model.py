"""The `model` section of the config: the networks' sizes and the discriminator's form."""

import ml_collections


def model_config() -> ml_collections.ConfigDict:
  """Returns the `model` section with every field at its default.

  Fields:
    nz: latent size.
    base_features: channels of the first conv; doubled per halving.
    mlp_widths: hidden widths for tabular inputs.
    discriminator: image discriminator: "dcgan" or "patch" (PatchGAN).
    patch_layers: stride-2 layers of the patch discriminator (3: 70x70).
  """
  config = ml_collections.ConfigDict()
  config.nz = 100
  config.base_features = 64
  config.mlp_widths = (64, 32)
  config.discriminator = "dcgan"
  config.patch_layers = 3
  return config
