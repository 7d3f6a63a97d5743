r"""AnoGAN on scikit-learn's digits, GANomaly's anomaly_class protocol.

  for seed in 0 1 2; do
    python experiments/train.py --config=configs/anogan_digits.py:digit=0 \
        --workdir=/tmp/anogan_digits_c0_s$seed --config.seed=$seed
  done

The argument digit=D is the anomalous digit (class_index, default 0). Digits are 8x8;
the loader resizes them to 16x16 (bilinear). A DCGAN (nz 100, 32 base features,
Adam 2e-4 / b1 0.5) is trained on the normal digits; each test image is scored
by a 500-step batched latent search (Adam lr 0.01 -> 0.001 @ 200 -> 0.0005 @
300, z from zeros, lambda 0.1 on D's penultimate 4x4 features). Reported: image
AUROC / AUPRC for "score" (the search loss), "score_residual" and
"score_feature"; digits have no masks, so no pixel AUROC.

Measured (docs/results/digits.md): AUROC 0.695 ± 0.008, AUPRC 0.557 ± 0.013,
mean over the 10 digits, ± std over seeds 0, 1, 2; about 1.5 min per run on a
2-core CPU.
"""

from ganad_jax import configs


def get_config(arg: str | None = None):
  args = configs.parse_arg(arg, digit=0)
  config = configs.base_config("anogan")
  configs.digits_anomaly_class(config, args.digit)
  config.model.base_features = 32
  config.train.num_epochs = 25.0
  config.anogan.search.schedule = "piecewise"  # 500 steps from z = 0, lr 0.01 at first.
  return config
