r"""Skip-GANomaly (Akcay et al. 2019) on scikit-learn's digits, GANomaly's anomaly_class protocol.

  for seed in 0 1 2; do
    python experiments/train.py --config=configs/skip_ganomaly_digits.py:0 \
        --workdir=/tmp/skip_ganomaly_digits_c0_s$seed --config.seed=$seed
  done

The argument is the anomalous digit (class_index, default 0). The paper trains
32x32 images with 64 base features for 25 epochs; on the 8x8 digits this config
uses 16x16 (bilinear resize; the U-Net goes down 4 times to 1x1), 32 base
features and the project's fixed 15 epochs, so a run trains in about a minute
on a 2-core CPU. Loss weights (w_adv, w_con, w_lat) = (1, 50, 1), Adam 2e-4 /
b1 0.5, batch 64. Reported: image AUROC / AUPRC of "score" = 0.9 * rec + 0.1 *
feature, "score_recon" (rec = mean (x - x_hat)^2) and "score_feature"
(mean squared distance of D's penultimate features), BatchNorm in eval mode.

Measured (README digits table, same settings; the classes averaged within each
seed, then mean ± std over seeds 0, 1, 2): AUROC 0.851 ± 0.003, from
  python experiments/benchmark.py --config=configs/ae_digits.py --methods=skip_ganomaly --classes=0,1,2,3,4,5,6,7,8,9 --seeds=0,1,2
"""

from ganad_jax import configs


def get_config(arg: str | None = None):
  config = configs.base_config()
  config.method = "skip_ganomaly"
  configs.digits_anomaly_class(config, arg)
  config.model.base_features = 32
  config.model.discriminator = "dcgan"
  config.train.batch_size = 64
  config.train.num_epochs = 15.0
  section = config.skip_ganomaly
  section.w_adv, section.w_con, section.w_lat = 1.0, 50.0, 1.0
  section.score_lambda = 0.9
  section.score_rec = "l2"
  return config
