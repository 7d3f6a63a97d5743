r"""AE (L2) on scikit-learn's digits, GANomaly's anomaly_class protocol.

  python experiments/train.py --config=configs/ae_digits.py --workdir=/tmp/ae_digits \
      --config.data.class_index=0

Digits are 8x8; the loader resizes them to 32x32 (bilinear).
"""

from ganad_jax import configs


def get_config():
  config = configs.base_config()
  config.method = "ae"
  config.data.source = "digits"
  config.data.protocol = "anomaly_class"
  config.data.image_size = 32
  config.model.nz = 32
  config.model.base_features = 32
  config.train.num_epochs = 15.0
  return config
