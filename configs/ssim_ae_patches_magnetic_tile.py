r"""SSIM-AE (Bergmann et al. 2018) on the magnetic tiles with AnoGAN's patch protocol.

  python experiments/benchmark.py --config=configs/ssim_ae_patches_magnetic_tile.py \
      --methods=ssim_ae --seeds=0,1,2 --workdir=/tmp/patches_ssim_ae

configs/ae_patches_magnetic_tile.py with the SSIM loss: the same nets, data,
crops and tiles.

Measured, seeds 0, 1, 2 (docs/patch_protocol.md): image AUROC 0.521 ± 0.008
(mean of tiles 0.509 ± 0.002), pixel AUROC 0.593 ± 0.003, AUPRO 0.511 ±
0.002.
"""

from ganad_jax import configs


def get_config(arg: str | None = None):
  configs.parse_arg(arg)  # Takes no argument.
  config = configs.with_method(configs.sibling_config(__file__, "ae_patches_magnetic_tile"),
                               "ssim_ae")
  return config
