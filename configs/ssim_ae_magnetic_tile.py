r"""SSIM-AE (Bergmann et al. 2018) on the magnetic tiles.

  python experiments/train.py --config=configs/ssim_ae_magnetic_tile.py --workdir=/tmp/ssim_ae_magnetic_tile

Magnetic-Tile-Defect (Huang et al. 2020) in the MVTec AD layout: train on
train/good, test on test/*, pixel metrics from the ground-truth masks. Point
data.path at any MVTec AD category folder to run on MVTec AD.
"""

from ganad_jax import configs


def get_config(arg: str | None = None):
  configs.parse_arg(arg)  # Takes no argument.
  # configs/ae_magnetic_tile.py with the SSIM loss: the same nets, data and budget.
  config = configs.with_method(configs.sibling_config(__file__, "ae_magnetic_tile"), "ssim_ae")
  return config
