r"""Gaussian / Mahalanobis scorer (Rippel et al. 2020) on scikit-learn's digits, anomaly_class.

  python experiments/train.py --config=configs/gaussian_digits.py --workdir=/tmp/gaussian_digits
  # On the encoder of a trained AE run (same data settings) instead of pixels:
  python experiments/train.py --config=configs/gaussian_digits.py:workdir=/tmp/ae_digits \
      --workdir=/tmp/gaussian_ae_digits

Digit 0 is the anomaly (--config.data.class_index), the other nine are normal;
16x16 images. Without an argument the features are the 256 raw pixels; with
workdir=DIR, every layer of that run's encoder (global-average-pooled conv
blocks and the latent code). Mean and Ledoit-Wolf covariance of the normal
training features, score = sum over layers of the Mahalanobis distances. No
training steps: seconds on a 2-core CPU.
"""

from ganad_jax import configs


def get_config(arg: str | None = None):
  args = configs.parse_arg(arg, workdir="")
  config = configs.base_config("gaussian")
  configs.digits_anomaly_class(config)  # Digit 0; see --config.data.class_index above.
  if args.workdir:
    config.gaussian.features = "workdir"  # Its net "encoder".
    config.gaussian.workdir = args.workdir
  return config
