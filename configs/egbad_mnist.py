r"""EGBAD on MNIST with the reference's own MNIST settings (Zenati et al. 2018).

  python experiments/train.py --config=configs/egbad_mnist.py:digit=0 --workdir=/tmp/egbad_mnist
  python experiments/benchmark.py --config=configs/egbad_mnist.py:budget=short --methods=egbad \
      --classes=0,1,2 --seeds=0 --workdir=/tmp/egbad_mnist_bench

Ported from houssamzenati/Efficient-GAN-Anomaly-Detection at commit 15568ab
(bigan/mnist_utilities.py, bigan/run_mnist.py, data/mnist.py; the differences
that remain are listed in experiments/reference/egbad.md):

- protocol: GANomaly's anomaly_class, which is EGBAD's: digit D is the anomaly,
  the other nine are normal, pooled and split 0.8 / 0.2 into train / test, and
  every image of digit D goes to test. Our pool is the MNIST IDX files in
  ../shared/data/mnist (the official test split: about 6,500 training normals
  per digit; EGBAD pools all 70,000); 28x28 resized to 32x32 (our loader's
  sizes are powers of two), values in [-1, 1] as EGBAD's `centered`.
- nets: EGBAD's MNIST E, G and D x branch (egbad.nets 'zenati', models.bigan),
  latent 200, D's z branch 512 and joint layer 1024, LeakyReLU 0.1, dropout
  0.5 in D, TF-default BatchNorm.
- training: Adam 1e-5 / b1 0.5 for D, G and E; batch 100; the loss of
  `methods.egbad`; EMA 0.999 from the initial weights (egbad.ema_warmup False).
- score: 0.9 * |x - G(E(x))|_1 + 0.1 * |f(x, E(x)) - f(G(E(x)), E(x))|_1
  (EGBAD's 'fm', degree 1, w 0.1), f = D's joint layer.
- budget: `num_epochs` 100 of our pool (6,400 steps). EGBAD's run file takes
  the epoch count on its command line (--nb_epochs, no default).

The argument budget=short (default budget=reference) is what a 2-core CPU
affords: Adam 2e-4 (our other GANs' rate) for 1,000 steps (about 15 epochs),
with the EMA's num_updates warm-up (egbad.ema_warmup True: a constant 0.999
from the initial weights would keep 0.999^1000 = 37 % of them). About 7
CPU-minutes per run here; the reference budget about 110 minutes on one core
(digits 0 and 1, experiments/reference/egbad.md).
"""

from ganad_jax import configs

DEFAULT_PATH = configs.shared_data_path(__file__, "mnist")


def get_config(arg: str | None = None):
  args = configs.parse_arg(arg, digit=0, budget="reference")
  if args.budget not in ("reference", "short"):
    raise ValueError(f"budget must be 'reference' or 'short'; got {args.budget!r}.")
  config = configs.base_config("egbad")
  config.data.source = "idx"
  config.data.path = DEFAULT_PATH
  config.data.class_index = args.digit
  config.model.nz = 200
  config.egbad.nets = "zenati"
  config.egbad.d_negative_slope = 0.1
  config.egbad.d_dropout = 0.5
  config.egbad.ema_warmup = False
  config.optim.lr = 1e-5
  config.optim.b1 = 0.5
  config.train.batch_size = 100
  config.train.num_epochs = 100.0
  if args.budget == "short":
    config.optim.lr = 2e-4
    config.egbad.ema_warmup = True
    config.train.num_steps = 1000
  return config
