r"""EGBAD (BiGAN) on scikit-learn's breast-cancer table: malignant tumours are the anomaly.

  python experiments/train.py --config=configs/egbad_breast_cancer.py --workdir=/tmp/egbad_bc

Data and protocol as configs/ae_breast_cancer.py. EGBAD's tabular nets (the
paper's KDD99 setting): MLP G (8 -> 32 -> 64 -> 30) and E (30 -> 64 -> 32 -> 8),
D with an x branch (64, 32), a 512-wide z branch and a 1024-wide joint layer;
Adam 2e-4 / b1 0.5, batch 32, 100 epochs (800 steps). The parameter EMA decays
with 0.99 instead of EGBAD's 0.999: at 0.999 an 800-step run would still weigh
the initial parameters by 0.999^800 = 45 %. Score: 0.9 * |x - G(E(x))|_1 +
0.1 * |f(x, E(x)) - f(G(E(x)), E(x))|_1 ("score"), and both terms alone.

Expected result, seeds 0, 1, 2 (17-22 s each on a 2-core CPU): "score" AUROC
0.936 ± 0.020, AUPRC 0.979 ± 0.007; "score_recon" AUROC 0.954 ± 0.015;
"score_feature" AUROC 0.596 ± 0.229 (unstable across seeds: the joint
discriminator's features carry little signal here). AUPRC chance level 0.749.
"""

from ganad_jax import configs


def get_config(arg: str | None = None):
  configs.parse_arg(arg)  # Takes no argument.
  config = configs.base_config("egbad")
  configs.breast_cancer_table(config)
  config.model.nz = 8
  config.egbad.ema_decay = 0.99
  config.train.num_epochs = 100.0
  config.train.checkpoint_every = 400
  return config
