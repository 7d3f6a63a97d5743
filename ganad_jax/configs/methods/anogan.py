"""The config of AnoGAN (`methods/anogan.py`): the `anogan` section, its latent search included."""

import ml_collections

from ganad_jax.configs.methods import spec

def search_config() -> ml_collections.ConfigDict:
  """Returns the `anogan.search` section: the latent search of `ganad_jax.latent_search`.

  Fields:
    lam: weight of the feature term; the residual term gets 1 - lam (0.1: AnoGAN).
    steps: optimisation steps per sample (500 in most AnoGAN code).
    lr: learning rate (the initial one for schedule 'piecewise').
    schedule: 'constant' | 'piecewise' (lr * piecewise_scales at
      piecewise_boundaries; defaults give 0.01 -> 0.001 @ 200 -> 0.0005 @ 300).
    piecewise_boundaries: steps at which the learning rate is rescaled.
    piecewise_scales: multiplicative factor applied at each boundary.
    optimizer: 'adam' | 'sgd'.
    b1, b2: Adam's moment decays.
    init: 'zeros' | 'normal' | 'truncated_normal' (in [-2, 2]) | 'encoder'
      (the `z_init_fn` warm start, e.g. an EGBAD / f-AnoGAN encoder).
    init_scale: standard deviation of random starting points. With 'zeros' or
      'encoder', restart 0 starts at 0 / E(x) and restarts >= 1 at that point
      plus init_scale * N(0, 1).
    restarts: independent starting points per sample; the best is kept.
    patience: early stop after this many steps without improvement (0 = off).
    min_delta: an improvement must lower the loss by more than this.
    select: 'best' (best iterate, final included) | 'final' (last iterate).
    chunk_size: samples searched together in one compiled chunk; 0 = auto:
      for images 64 on CPU (the fastest on a 2-core CPU: the activations stay
      in cache) and 1024 on accelerators (not tuned: no GPU was measured),
      8192 for vectors.
    feature_layer: name of the discriminator layer used as f (read by the
      methods that build `feature_fn`; 'penultimate' or 'block<i>').
  """
  config = ml_collections.ConfigDict()
  config.lam = 0.1
  config.steps = 500
  config.lr = 0.01
  config.schedule = "constant"
  config.piecewise_boundaries = (200, 300)
  config.piecewise_scales = (0.1, 0.5)
  config.optimizer = "adam"
  config.b1 = 0.9
  config.b2 = 0.999
  config.init = "zeros"
  config.init_scale = 1.0
  config.restarts = 1
  config.patience = 0
  config.min_delta = 0.0
  config.select = "best"
  config.chunk_size = 0
  config.feature_layer = "penultimate"
  return config


def anogan_config() -> ml_collections.ConfigDict:
  """Returns the `anogan` section.

  Fields:
    gan_loss: 'bce' (the DCGAN losses, AnoGAN's) | 'wgan_gp' (`methods.wgan_gp`:
      a LayerNorm DCGAN critic, n_critic critic steps per G step, each on
      train.batch_size / n_critic rows, gradient penalty gp_weight; images
      need model.discriminator 'dcgan').
    n_critic: critic steps per G step with gan_loss 'wgan_gp' (5).
    gp_weight: gradient-penalty weight with gan_loss 'wgan_gp' (10).
    feature_matching: train G with feature matching instead of BCE(D(G(z)), 1)
      (gan_loss 'bce' only).
    fm_layer: D layer used by feature matching ('penultimate' or 'block<i>').
    g_widths: hidden widths of the tabular generator (latent -> ... -> F).
    d_widths: hidden widths of the tabular discriminator (F -> ... -> 1).
    search: the latent search (see `search_config`).
  """
  config = ml_collections.ConfigDict()
  config.gan_loss = "bce"
  config.n_critic = 5
  config.gp_weight = 10.0
  config.feature_matching = False
  config.fm_layer = "penultimate"
  config.g_widths = (32, 64)
  config.d_widths = (64, 32)
  config.search = search_config()
  return config


METHODS = {"anogan": spec.Spec(sections={"anogan": anogan_config})}
