r"""SSIM-AE (Bergmann et al. 2018) on digits.

  python experiments/train.py --config=configs/ssim_ae_digits.py --workdir=/tmp/ssim_ae_digits \
      --config.data.class_index=0

GANomaly's anomaly_class protocol on scikit-learn's bundled digits (no download):
one digit is the anomaly, the other nine are normal. The loader resizes the 8x8
digits to 16x16 (bilinear).
"""

from ganad_jax import configs


def get_config(arg: str | None = None):
  configs.parse_arg(arg)  # Takes no argument.
  # configs/ae_digits.py with the SSIM loss: the same nets, data and budget.
  config = configs.with_method(configs.sibling_config(__file__, "ae_digits"), "ssim_ae")
  return config
