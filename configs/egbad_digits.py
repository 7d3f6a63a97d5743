r"""EGBAD (Zenati et al. 2018) on scikit-learn's digits, GANomaly's anomaly_class protocol.

  python experiments/train.py --config=configs/egbad_digits.py:digit=0 --workdir=/tmp/egbad_digits

The argument digit=D is the anomalous digit (class_index, default 0); the other nine
are normal. The loader resizes the 8x8 digits to 16x16 (bilinear). A BiGAN
(DCGAN G and E, joint D with a 512-wide z branch and a 1024-wide joint layer,
nz 32, 32 base features, Adam 2e-4 / b1 0.5, batch 64) is trained on the
normal digits for 3,000 steps (about 165 epochs); test images are scored with the EMA weights (decay 0.999) by
0.9 * sum |x - G(E(x))| + 0.1 * sum |f(x, E(x)) - f(G(E(x)), E(x))| ("score"),
and by both terms alone ("score_recon", "score_feature"). Add
--config.egbad.search_steps=100 for the encoder-initialised AnoGAN search too
("score_search"). About 1.5 CPU-minutes per run on a 2-core CPU.

The budget is the one change from configs/ae_digits.py's (15 epochs, 270
steps): the BiGAN's encoder does not invert G that early (G(E(x)) is no closer
to x than G(z) for a random z, and the score is at chance). 3,000 steps is
where the inversion error on the training normals stopped falling
(experiments/egbad_inversion.py; experiments/reference/egbad.md): a choice made
on training normals, never on test labels.
"""

from ganad_jax import configs


def get_config(arg: str | None = None):
  # configs/ae_digits.py's settings (those of docs/results/digits.md) but the budget.
  args = configs.parse_arg(arg, digit=0)
  config = configs.with_method(configs.sibling_config(__file__, "ae_digits"), "egbad")
  config.data.class_index = args.digit
  config.train.num_steps = 3000
  return config
