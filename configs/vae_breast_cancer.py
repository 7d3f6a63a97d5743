r"""VAE on scikit-learn's breast-cancer table: malignant tumours are the anomaly.

  python experiments/train.py --config=configs/vae_breast_cancer.py --workdir=/tmp/vae_bc

Data and protocol as configs/ae_breast_cancer.py. MLP encoder / decoder of the
same widths as the AE (30 -> 64 -> 32 -> 2 x 8, and back), fixed-variance
Gaussian decoder (sigma 0.1, beta 1), Adam 1e-3 (b1 0.9), batch 32, 100
epochs. Reported: "score" (squared error of the decoded posterior mean) and
"score_elbo" (negative ELBO from 16 samples).

Expected result, seeds 0, 1, 2 (6-9 s each on a 2-core CPU): "score" AUROC
0.959 ± 0.006, AUPRC 0.986 ± 0.003; "score_elbo" AUROC 0.958 ± 0.006 (AUPRC
chance level 0.749).
"""

from ganad_jax import configs


def get_config(arg: str | None = None):
  configs.parse_arg(arg)  # Takes no argument.
  # configs/ae_breast_cancer.py's data, widths, optimiser and budget.
  config = configs.with_method(configs.sibling_config(__file__, "ae_breast_cancer"), "vae")
  return config
