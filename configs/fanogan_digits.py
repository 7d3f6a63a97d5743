r"""f-AnoGAN (Schlegl et al. 2019) on scikit-learn's digits, GANomaly's anomaly_class protocol.

  python experiments/benchmark.py --config=configs/fanogan_digits.py --methods=fanogan \
      --classes=0,1,2,3,4,5,6,7,8,9 --seeds=0,1,2 --workdir=/tmp/fanogan_digits

The argument digit=D is the anomalous digit (class_index, default 0); the other nine are
normal, resized by the loader from 8x8 to 16x16 (bilinear), as for AnoGAN and EGBAD.
The reference's settings (tSchlegl/f-AnoGAN; experiments/reference/fanogan.md): z of
128 from N(0, I), 5 critic steps per generator step, gradient penalty 10, Adam 1e-4 with
betas (0, 0.9), batch 64 per critic step (train.batch_size 320 = 5 x 64), then the izi_f
encoder (kappa 1, RMSProp 5e-5, tanh output), scored by MSE(x, G(E(x))) + MSE(f(x),
f(G(E(x)))). Changed, for the digits' size and the scoring budget: the ResNets' base
width `fanogan.dim` 8 (the reference's 64 at 64x64; at 16x16 the nets have 2 resampling
blocks, widths 8 -> 16 -> 32), which scores with 7.1 MFLOPs per sample against AnoGAN's
1,953 MFLOPs (configs/anogan_digits.py: 500 search steps; experiments/score_flops.py);
dim 16 would cost 27.0 MFLOPs, more than 1/100 of AnoGAN's. And the budget: GAN_STEPS
generator steps (each with 5 critic steps), then ENCODER_STEPS encoder steps (the
reference: 7 epochs of its large OCT set, then 50,000 encoder steps); not yet validated
by a run on digits (docs/results/digits.md says what was run).
"""

from ganad_jax import configs

GAN_STEPS = 2000
ENCODER_STEPS = 2000


def get_config(arg: str | None = None):
  args = configs.parse_arg(arg, digit=0)
  config = configs.base_config("fanogan")
  configs.digits_anomaly_class(config, args.digit)
  config.model.nz = 128
  config.optim.lr = 1e-4
  config.optim.b1 = 0.0
  config.optim.b2 = 0.9
  config.fanogan.dim = 8
  config.fanogan.gan_steps = GAN_STEPS
  config.fanogan.encoder_steps = ENCODER_STEPS
  config.train.batch_size = 5 * 64  # n_critic slices of the reference's 64.
  config.train.num_steps = GAN_STEPS + ENCODER_STEPS
  return config
