r"""SSIM-AE (Bergmann et al. 2018) on the magnetic tiles.

  python experiments/train.py --config=configs/ssim_ae_magnetic_tile.py --workdir=/tmp/ssim_ae_magnetic_tile

Magnetic-Tile-Defect (Huang et al. 2020) in the MVTec AD layout: train on
train/good, test on test/*, pixel metrics from the ground-truth masks. Point
data.path at any MVTec AD category folder to run on MVTec AD.
"""

import os

from ganad_jax import configs

# ../shared/data/magnetic_tile beside the repo, wherever the command runs from.
DEFAULT_PATH = os.path.normpath(os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "magnetic_tile"))


def get_config():
  config = configs.base_config()
  config.method = "ssim_ae"
  config.data.source = "folder"
  config.data.protocol = "folder"
  config.data.path = DEFAULT_PATH
  config.data.image_size = 64  # Photos of 103-632 x 222-403 px, resized (bilinear).
  config.model.nz = 100
  config.model.base_features = 32
  config.train.batch_size = 32
  config.train.num_epochs = 15.0
  config.eval.batch_size = 64
  return config
