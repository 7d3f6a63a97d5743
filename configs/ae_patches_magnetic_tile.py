r"""AE (L2) on the magnetic tiles with AnoGAN's patch protocol.

  python experiments/benchmark.py --config=configs/ae_patches_magnetic_tile.py --methods=ae \
      --seeds=0,1,2 --workdir=/tmp/patches_ae

configs/ae_magnetic_tile.py (the same nets, batch and optimiser) with the
photos kept at 128x128 instead of 64x64 (`configs.magnetic_tile_patches`):
the AE trains on random 32x32 crops, and scores every test and val photo by
its 49 overlapping 32x32 tiles (stride 16), whose maps are stitched back to
128x128; the image score is the maximum of the stitched map blurred by
sigma 4 px (`config.patch`, `ganad_jax.patches`).

Measured, seeds 0, 1, 2 (docs/patch_protocol.md, beside the whole-image
numbers): image AUROC 0.491 ± 0.003 (mean of tiles 0.516 ± 0.002), pixel
AUROC 0.560 ± 0.012, AUPRO 0.479 ± 0.041; about 30 CPU-seconds a seed.
"""

from ganad_jax import configs


def get_config(arg: str | None = None):
  configs.parse_arg(arg)  # Takes no argument.
  config = configs.sibling_config(__file__, "ae_magnetic_tile")
  configs.magnetic_tile_patches(config, image_size=128, size=32, stride=16)
  return config
