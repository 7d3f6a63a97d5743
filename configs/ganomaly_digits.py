r"""GANomaly (Akcay et al. 2018) on scikit-learn's digits, GANomaly's anomaly_class protocol.

  for seed in 0 1 2; do
    python experiments/train.py --config=configs/ganomaly_digits.py:digit=0 \
        --workdir=/tmp/ganomaly_digits_c0_s$seed --config.seed=$seed
  done

The argument digit=D is the anomalous digit (class_index, default 0). The paper's nets
are 32x32 with nz 100 and 64 base features; on the 8x8 digits this config uses
16x16 (bilinear resize) and 32 base features (as the AE configs), nz 100, so a
run trains in about a minute on a 2-core CPU. Loss weights (w_adv, w_con,
w_enc) = (1, 50, 1), Adam 2e-4 / b1 0.5, batch 64, 15 epochs, D re-initialised
when its loss falls below 1e-5 (the reference's rule). Reported: image AUROC /
AUPRC of "score" (the latent distance mean((z - z_hat)^2)) and "score_recon"
(mean |x - x_hat|), BatchNorm in eval mode.
"""

from ganad_jax import configs


def get_config(arg: str | None = None):
  args = configs.parse_arg(arg, digit=0)
  config = configs.base_config("ganomaly")
  configs.digits_anomaly_class(config, args.digit)
  config.model.base_features = 32
  return config
