r"""VAE on scikit-learn's digits, GANomaly's anomaly_class protocol.

  python experiments/train.py --config=configs/vae_digits.py:digit=0 --workdir=/tmp/vae_digits

The argument digit=D is the anomalous digit (class_index, default 0); the other nine
are normal. The loader resizes the 8x8 digits to 16x16 (bilinear). DCGAN
encoder / decoder (nz 32, 32 base features) with a fixed-variance Gaussian
decoder (sigma 0.1, beta 1), 15 epochs. Reported: "score" (squared error of
the decoded posterior mean, as AE-L2) and "score_elbo" (negative ELBO from 16
samples). About a minute on a 2-core CPU.
"""

from ganad_jax import configs


def get_config(arg: str | None = None):
  # configs/ae_digits.py's settings, those of docs/results/digits.md.
  args = configs.parse_arg(arg, digit=0)
  config = configs.with_method(configs.sibling_config(__file__, "ae_digits"), "vae")
  config.data.class_index = args.digit
  return config
