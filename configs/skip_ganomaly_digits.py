r"""Skip-GANomaly (Akcay et al. 2019) on scikit-learn's digits, GANomaly's anomaly_class protocol.

  for seed in 0 1 2; do
    python experiments/train.py --config=configs/skip_ganomaly_digits.py:digit=0 \
        --workdir=/tmp/skip_ganomaly_digits_c0_s$seed --config.seed=$seed
  done

The argument digit=D is the anomalous digit (class_index, default 0). The paper trains
32x32 images with 64 base features for 25 epochs; on the 8x8 digits this config
uses 16x16 (bilinear resize; the U-Net goes down 4 times to 1x1), 32 base
features and the project's fixed 15 epochs, so a run trains in about a minute
on a 2-core CPU. Loss weights (w_adv, w_con, w_lat) = (1, 50, 1), Adam 2e-4 /
b1 0.5, batch 64. Reported: image AUROC / AUPRC of "score" = 0.9 * rec + 0.1 *
feature, "score_recon" (rec = mean (x - x_hat)^2) and "score_feature"
(mean squared distance of D's penultimate features), BatchNorm in eval mode.
"""

from ganad_jax import configs


def get_config(arg: str | None = None):
  args = configs.parse_arg(arg, digit=0)
  config = configs.base_config("skip_ganomaly")
  configs.digits_anomaly_class(config, args.digit)
  config.model.base_features = 32
  return config
