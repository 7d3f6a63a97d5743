r"""AE (L2) on the magnetic tiles.

  python experiments/train.py --config=configs/ae_magnetic_tile.py --workdir=/tmp/ae_magnetic_tile

Magnetic-Tile-Defect (Huang et al. 2020) in the MVTec AD layout: train on
train/good, test on test/*, pixel metrics from the ground-truth masks. Point
data.path at any MVTec AD category folder to run on MVTec AD.
"""

from ganad_jax import configs

DEFAULT_PATH = configs.shared_data_path(__file__, "magnetic_tile")


def get_config(arg: str | None = None):
  configs.parse_arg(arg)  # Takes no argument.
  config = configs.base_config("ae")
  configs.magnetic_tile_folder(config, DEFAULT_PATH)
  config.model.base_features = 32
  config.train.batch_size = 32
  config.eval.batch_size = 64
  return config
