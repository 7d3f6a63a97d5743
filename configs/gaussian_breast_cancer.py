r"""Gaussian / Mahalanobis scorer on scikit-learn's breast-cancer table (malignant = anomaly).

  python experiments/train.py --config=configs/gaussian_breast_cancer.py --workdir=/tmp/gauss_bc

Data and protocol as configs/ae_breast_cancer.py. No training steps: mean and
Ledoit-Wolf covariance of the 257 scaled benign training rows (features
"pixels": the rows themselves), score = Mahalanobis distance. The classical
baseline the generative models have to beat on a table.

Expected result, seeds 0, 1, 2 (about 1 s each): AUROC 0.960 ± 0.009, AUPRC
0.986 ± 0.004 (AUPRC chance level 0.749).
"""

from ganad_jax import configs


def get_config(arg: str | None = None):
  configs.parse_arg(arg)  # Takes no argument.
  config = configs.base_config("gaussian")  # On features "pixels": the rows themselves.
  configs.breast_cancer_table(config)
  return config
