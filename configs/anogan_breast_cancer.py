r"""AnoGAN on scikit-learn's breast-cancer table: malignant tumours are the anomaly.

  python experiments/train.py --config=configs/anogan_breast_cancer.py --workdir=/tmp/anogan_bc

Data and protocol as configs/ae_breast_cancer.py (257 benign training rows, test
71 benign + 212 malignant, features MinMax-scaled to [-1, 1] on the training
rows). An MLP GAN (G: 8 -> 32 -> 64 -> 30, D: 30 -> 64 -> 32 -> 1), Adam 2e-4
/ b1 0.5, batch 32, 100 epochs (800 steps); each test row is scored by a
500-step batched latent search (Adam 0.01, z from zeros, lambda 0.1 on D's
penultimate features). Reported: "score" (the search loss), "score_residual"
and "score_feature".

Expected result, seeds 0, 1, 2 (7-9 s each on a 2-core CPU): "score" AUROC
0.936 ± 0.024, AUPRC 0.978 ± 0.009; "score_residual" AUROC 0.935 ± 0.026;
"score_feature" AUROC 0.902 ± 0.017 (AUPRC chance level 0.749).
"""

from ganad_jax import configs


def get_config(arg: str | None = None):
  configs.parse_arg(arg)  # Takes no argument.
  config = configs.base_config("anogan")
  configs.breast_cancer_table(config)
  config.model.nz = 8
  config.train.num_epochs = 100.0
  config.train.checkpoint_every = 400
  return config
