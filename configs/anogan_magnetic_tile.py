r"""AnoGAN on the Magnetic-Tile-Defect images (MVTec AD layout), with pixel AUROC.

  for seed in 0 1 2; do
    python experiments/train.py --config=configs/anogan_magnetic_tile.py \
        --workdir=/tmp/anogan_mt_s$seed --config.seed=$seed
  done

The data folder defaults to ../shared/data/magnetic_tile next to the repo
(Huang, Qiu and Yuan, The Visual Computer 2020: cite it with any result); pass
another MVTec-AD-style category folder as the argument
(`--config=configs/anogan_magnetic_tile.py:path=/path/to/mvtec/screw`). Images are
grayscale, resized to 64x64. A DCGAN (nz 100, 32 base features) is trained on
train/good; every test image is scored by a 300-step batched latent search
(lr 0.02, the MVTec AD paper's AnoGAN setting; lambda 0.1 on D's penultimate
features). The anomaly map is |x - G(z)| and gives the pixel AUROC against
the ground-truth masks.

Measured, seeds 0, 1, 2 (docs/results/magnetic_tile.md): image AUROC 0.539 ± 0.008, AUPRC 0.704 ±
0.012, pixel AUROC 0.580 ± 0.010, AUPRO 0.503 ± 0.032; about 29 min a seed on
an otherwise idle 2-core CPU.
"""

from ganad_jax import configs

DEFAULT_PATH = configs.shared_data_path(__file__, "magnetic_tile")


def get_config(arg: str | None = None):
  args = configs.parse_arg(arg, path=DEFAULT_PATH)
  config = configs.base_config("anogan")
  configs.magnetic_tile_folder(config, args.path)
  config.model.base_features = 32
  config.train.num_epochs = 100.0
  config.eval.batch_size = 128
  config.anogan.search.steps = 300
  config.anogan.search.lr = 0.02
  return config
