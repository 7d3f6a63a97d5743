r"""VAE on scikit-learn's digits, GANomaly's anomaly_class protocol.

  python experiments/train.py --config=configs/vae_digits.py:0 --workdir=/tmp/vae_digits

The argument is the anomalous digit (class_index, default 0); the other nine
are normal. The loader resizes the 8x8 digits to 16x16 (bilinear). DCGAN
encoder / decoder (nz 32, 32 base features) with a fixed-variance Gaussian
decoder (sigma 0.1, beta 1), 15 epochs. Reported: "score" (squared error of
the decoded posterior mean, as AE-L2) and "score_elbo" (negative ELBO from 16
samples). About a minute on a 2-core CPU.

Measured (README digits table, same settings; the classes averaged within each
seed, then mean ± std over seeds 0, 1, 2): AUROC 0.863 ± 0.009, from
  python experiments/benchmark.py --config=configs/ae_digits.py --methods=vae --classes=0,1,2,3,4,5,6,7,8,9 --seeds=0,1,2
"""

from ganad_jax import configs


def get_config(arg: str | None = None):
  # configs/ae_digits.py's settings, those of the README digits table.
  config = configs.sibling_config(__file__, "ae_digits")
  config.method = "vae"
  configs.digits_anomaly_class(config, arg)  # The argument is the anomalous digit.
  config.vae.beta = 1.0
  config.vae.sigma = 0.1
  config.vae.num_score_samples = 16
  return config
