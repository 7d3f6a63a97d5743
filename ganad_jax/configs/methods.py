"""The method sections of the config: one function per method's section.

Each function returns its section with every field at its default; the method
module of the same name (`ganad_jax/methods/<name>.py`) reads it.
"""

import ml_collections


def ssim_config() -> ml_collections.ConfigDict:
  """Returns the `ssim` section: the SSIM window of the SSIM-AE loss and score.

  Fields:
    window: side of the Gaussian window, in pixels.
    sigma: its standard deviation, in pixels.
  """
  config = ml_collections.ConfigDict()
  config.window = 11
  config.sigma = 1.5
  return config


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
    feature_matching: train G with feature matching instead of BCE(D(G(z)), 1).
    fm_layer: D layer used by feature matching ('penultimate' or 'block<i>').
    g_widths: hidden widths of the tabular generator (latent -> ... -> F).
    d_widths: hidden widths of the tabular discriminator (F -> ... -> 1).
    search: the latent search (see `search_config`).
  """
  config = ml_collections.ConfigDict()
  config.feature_matching = False
  config.fm_layer = "penultimate"
  config.g_widths = (32, 64)
  config.d_widths = (64, 32)
  config.search = search_config()
  return config


def egbad_config() -> ml_collections.ConfigDict:
  """Returns the `egbad` section.

  Fields:
    nets: 'dcgan' (DCGAN G and E, the joint D's x branch a DCGAN conv stack;
      MLPs for vectors) | 'zenati' (EGBAD's own MNIST G, E and D x branch,
      houssamzenati/Efficient-GAN-Anomaly-Detection bigan/mnist_utilities.py;
      images only; `models.bigan`).
    d_negative_slope: slope of the joint D's LeakyReLUs (EGBAD's: 0.1).
    d_dropout: dropout rate after every hidden layer of the joint D in train
      mode (EGBAD's: 0.5; 0 = none).
    ema_decay: decay of the parameters' moving average used for scoring.
    ema_warmup: True: the decay at step t is min(ema_decay, (1 + t) / (10 +
      t)) (TF's ExponentialMovingAverage with num_updates), so that a short
      run is not scored with nearly initial weights; False: the constant
      ema_decay from the initial weights (EGBAD's code).
    feature_weight: w of the score, (1 - w) * residual + w * feature distance.
    feature_layer: D layer of the score's feature distance ('penultimate' = the
      joint layer, 'z', or 'block<i>' of the x branch).
    g_widths: hidden widths of the tabular generator (latent -> ... -> F).
    e_widths: hidden widths of the tabular encoder (F -> ... -> latent).
    d_widths: hidden widths of the tabular discriminator's x branch.
    d_z_features: width of the discriminator's z branch.
    d_joint_features: width of the discriminator's joint layer.
    search_steps: > 0 also scores with an encoder-initialised latent search
      ("score_search") of that many steps (`config.anogan.search`); 0 = off.
  """
  config = ml_collections.ConfigDict()
  config.nets = "dcgan"
  config.d_negative_slope = 0.2
  config.d_dropout = 0.0
  config.ema_decay = 0.999
  config.ema_warmup = True
  config.feature_weight = 0.1
  config.feature_layer = "penultimate"
  config.g_widths = (32, 64)
  config.e_widths = (64, 32)
  config.d_widths = (64, 32)
  config.d_z_features = 512
  config.d_joint_features = 1024
  config.search_steps = 0
  return config


def vae_config() -> ml_collections.ConfigDict:
  """Returns the `vae` section.

  Fields:
    beta: weight of the KL term in the training loss (1 = the ELBO).
    sigma: standard deviation of the Gaussian decoder, fixed. Images are in
      [-1, 1]; 0.1 keeps the reconstruction term from being swamped by the KL
      (a large sigma lets the posterior collapse to the prior).
    num_score_samples: draws of z per sample for "score_elbo".
  """
  config = ml_collections.ConfigDict()
  config.beta = 1.0
  config.sigma = 0.1
  config.num_score_samples = 16
  return config


def gaussian_config() -> ml_collections.ConfigDict:
  """Returns the `gaussian` section.

  Fields:
    features: 'pixels' | 'workdir' | 'pretrained' | 'flax_file' (see the
      docstring of `methods/gaussian.py`; 'pretrained' reads the config
      section `pretrained`).
    workdir: features 'workdir': the trained ganad_jax run.
    net: features 'workdir': 'encoder' or 'discriminator'.
    member: features 'workdir' on an ensemble workdir: the member k whose net
      is used; -1 (default) = the workdir must be a single run.
    module: features 'flax_file': "package.module:Class" of a flax.linen module.
    module_kwargs: features 'flax_file': JSON object of the constructor's arguments.
    call_kwargs: features 'flax_file': JSON object of extra `__call__` arguments.
    weights: features 'flax_file': msgpack file of the module's variables.
    layers: layer names; () = every layer the net returns.
    pool: 'mean' (global average) | 'flatten' for conv maps (N, H, W, C).
    squared: sum squared Mahalanobis distances instead of distances.
    select_levels: k > 0 keeps the k layers that best tell the validation
      normals from CutPaste copies of them; 0 sums every layer.
    max_features: refuse a layer wider than this (its covariance is D x D).
  """
  config = ml_collections.ConfigDict()
  config.features = "pixels"
  config.workdir = ""
  config.net = "encoder"
  config.member = -1
  config.module = ""
  config.module_kwargs = "{}"
  config.call_kwargs = "{}"
  config.weights = ""
  config.layers = ()
  config.pool = "mean"
  config.squared = False
  config.select_levels = 0
  config.max_features = 4096
  return config


def padim_config() -> ml_collections.ConfigDict:
  """Returns the `padim` section.

  Fields:
    layers: backbone stages concatenated into the embedding; () = the
      paper's choice for the backbone: stages 2-4 of an EfficientNet (strides
      4, 8, 16), layer1-3 of a ResNet.
    channels: size d of the random channel subset; 0 = every channel.
    gaussian: "per_position" | "shared" (see the docstring of `methods/padim.py`).
    eps: added to the covariance's diagonal.
    sigma: the map's Gaussian smoothing, in input pixels; 0 = none.
    max_memory_mb: refuse configurations whose statistics need more.
  """
  config = ml_collections.ConfigDict()
  config.layers = ()
  config.channels = 100
  config.gaussian = "per_position"
  config.eps = 0.01
  config.sigma = 4.0
  config.max_memory_mb = 2048
  return config


def ganomaly_config() -> ml_collections.ConfigDict:
  """Returns the `ganomaly` section.

  Fields:
    w_adv: weight of the feature-matching (adversarial) generator loss.
    w_con: weight of the contextual L1 loss mean|x - x_hat|.
    w_enc: weight of the latent loss mean((z - z_hat)^2).
    reinit_d_below: re-initialise D when its loss is below this (0 disables).
  """
  config = ml_collections.ConfigDict()
  config.w_adv = 1.0
  config.w_con = 50.0
  config.w_enc = 1.0
  config.reinit_d_below = 1e-5
  return config


def skip_ganomaly_config() -> ml_collections.ConfigDict:
  """Returns the `skip_ganomaly` section.

  Fields:
    w_adv: weight of G's adversarial loss BCE(D(x_hat), 1).
    w_con: weight of the contextual L1 loss mean|x - x_hat|.
    w_lat: weight of the latent loss mean((f_D(x) - f_D(x_hat))^2).
    score_lambda: score = lambda * rec + (1 - lambda) * feature.
    score_rec: "l2" (reference code) or "l1" (paper) residual in rec and the map.
    reinit_d_below: re-initialise D when its loss is below this (0 disables).
  """
  config = ml_collections.ConfigDict()
  config.w_adv = 1.0
  config.w_con = 50.0
  config.w_lat = 1.0
  config.score_lambda = 0.9
  config.score_rec = "l2"
  config.reinit_d_below = 1e-5
  return config
