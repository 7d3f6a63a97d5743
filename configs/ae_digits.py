r"""AE (L2) on digits.

  python experiments/train.py --config=configs/ae_digits.py --workdir=/tmp/ae_digits \
      --config.data.class_index=0

GANomaly's anomaly_class protocol on scikit-learn's bundled digits (no download):
one digit is the anomaly, the other nine are normal. The loader resizes the 8x8
digits to 16x16 (bilinear).
"""

from ganad_jax import configs


def get_config():
  config = configs.base_config()
  config.method = "ae"
  config.data.source = "digits"
  config.data.protocol = "anomaly_class"
  config.data.image_size = 16  # The smallest size the nets take; digits are 8x8.
  config.model.nz = 32
  config.model.base_features = 32
  config.train.num_epochs = 15.0
  return config
