r"""AnoGAN on the magnetic tiles with its own patch protocol (Schlegl et al. 2017).

  python experiments/benchmark.py --config=configs/anogan_patches_magnetic_tile.py \
      --methods=anogan --seeds=0,1,2 --workdir=/tmp/patches_anogan

configs/anogan_magnetic_tile.py (DCGAN nz 100, 32 base features, 1,000
steps of batch 64, the latent search at lr 0.02 with lambda 0.1) with the
photos kept at 128x128 (`configs.magnetic_tile_patches`): the GAN trains on
random 32x32 crops, and every test and val photo is scored by its tiles,
the latent search running over all tiles of a split at once in batches of
eval.batch_size tiles; the |x - G(z)| maps are stitched back to 128x128.
The tiles are 32 apart (16 a photo, no overlap): the search's cost grows
with the tiles' pixels, about 12 CPU-seconds a search step over the 10,528
tiles of test and val on a 2-core CPU, so the 300 steps of the whole-image
config cost about an hour of CPU a seed.

Measured with --config.anogan.search.steps=25 (the session's CPU budget),
seeds 0, 1, 2 (docs/patch_protocol.md): image AUROC 0.490 ± 0.010 (mean of
tiles 0.479 ± 0.007), pixel AUROC 0.552 ± 0.003, AUPRO 0.461 ± 0.014;
430 CPU-seconds a seed.
"""

from ganad_jax import configs

DEFAULT_PATH = configs.shared_data_path(__file__, "magnetic_tile")


def get_config(arg: str | None = None):
  args = configs.parse_arg(arg, path=DEFAULT_PATH)
  config = configs.sibling_config(__file__, "anogan_magnetic_tile", f"path={args.path}")
  configs.magnetic_tile_patches(config, image_size=128, size=32, stride=32)
  return config
