r"""PatchCore-10 % on pretrained EfficientNet-Lite0 stages 3 + 5, digits (one-class MNIST protocol).

  python experiments/train.py --config=configs/patchcore_digits.py --workdir=/tmp/patchcore_digits

The digits config of the Gaussian scorer (`configs/gaussian_digits.py`) with
PatchCore: the 16x16 digits resized to 64x64 inside the method (an 8 x 8 grid
of stage-3 locations); 1,165 training images give 74,560 patches and a 10 %
coreset of 7,456 rows; the paper's defaults otherwise (9 neighbours, sigma 4).
Nothing tuned.
"""

from ganad_jax import configs


def get_config(arg: str | None = None):
  configs.parse_arg(arg)  # Takes no argument.
  config = configs.with_method(configs.sibling_config(__file__, "gaussian_digits"), "patchcore")
  config.pretrained.backbone = "efficientnet-lite0"
  config.pretrained.input_size = 64
  config.patchcore.coreset_ratio = 0.1
  config.patchcore.bank_capacity = 7456  # int(0.1 x 1165 x 8 x 8): exactly full.
  config.eval.batch_size = 256
  return config
