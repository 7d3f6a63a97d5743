r"""AE (L2) on digits.

  python experiments/train.py --config=configs/ae_digits.py --workdir=/tmp/ae_digits \
      --config.data.class_index=0

GANomaly's anomaly_class protocol on scikit-learn's bundled digits (no download):
one digit is the anomaly, the other nine are normal. The loader resizes the 8x8
digits to 16x16 (bilinear).
"""

from ganad_jax import configs


def get_config(arg: str | None = None):
  configs.parse_arg(arg)  # Takes no argument.
  config = configs.base_config("ae")
  configs.digits_anomaly_class(config)  # Digit 0; see --config.data.class_index above.
  config.model.nz = 32
  config.model.base_features = 32
  return config
