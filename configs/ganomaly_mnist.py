r"""GANomaly on MNIST, GANomaly's anomaly_class protocol, 32x32 (the paper's MNIST setting).

  python experiments/train.py --config=configs/ganomaly_mnist.py:digit=0 --workdir=/tmp/ganomaly_mnist
  # All digits, 3 seeds, several methods (each on these settings):
  python experiments/benchmark.py --config=configs/ganomaly_mnist.py \
      --methods=gaussian,ae,ganomaly --classes=0,1,2,3,4,5,6,7,8,9 --seeds=0,1,2 \
      --workdir=/tmp/mnist

The argument digit=D is the anomalous digit (class_index, default 0); the other nine
are normal, pooled and split 0.8 / 0.2 into train / test (val = 0.1 of the
training normals), and every image of the anomalous digit goes to test. The
data are MNIST-format IDX files (data.source "idx"): by default the official
MNIST test split in ../shared/data/mnist beside the repo (10,000 images, so
the pool is the test split only: about 6,500 training normals per digit);
pass another folder holding the IDX files, e.g. the full 70,000-image set,
with --config.data.path. 28x28 digits are resized to 32x32 (bilinear).

DCGAN nets with nz 100 (the paper's) and 32 base features (the paper uses 64),
Adam 2e-4 / b1 0.5, batch 64, loss weights (1, 50, 1), and a budget of 300
steps (about 3 epochs of the pool; the paper trains 15 epochs on the 60,000
training images): sized so that 10 digits x 3 seeds x 3 methods run in well
under an hour on a 2-core CPU.
"""

from ganad_jax import configs

DEFAULT_PATH = configs.shared_data_path(__file__, "mnist")


def get_config(arg: str | None = None):
  args = configs.parse_arg(arg, digit=0)
  config = configs.base_config("ganomaly")
  config.data.source = "idx"
  config.data.path = DEFAULT_PATH
  config.data.class_index = args.digit
  config.model.base_features = 32
  config.train.num_steps = 300
  return config
