"""AnoGAN (Schlegl et al. 2017): a GAN trained on normal data, scored by latent search.

Training is a DCGAN on normal data only: images go through the DCGAN decoder
(G) and discriminator (D) of `models.dcgan` (N(0, 0.02) init, BatchNorm,
LeakyReLU 0.2 in D, tanh out), tabular vectors through MLPs (`g_widths`,
`d_widths`; linear output, since tabular features are standardised, not in
[-1, 1]). z ~ N(0, I) of size `config.model.nz`. With
`config.model.discriminator = "patch"` D is the PatchGAN of `models.patch`
(one logit per patch; the GAN losses average over patches).

One `train_step` is one D step (`gan.d_step`) then one G step on the same z
(the PyTorch DCGAN order), with the standard non-saturating losses:
    D: BCE(D(x), 1) + BCE(D(G(z)), 0)
    G: BCE(D(G(z)), 1), or with `feature_matching` the squared distance between
       the batch means of D's `fm_layer` on real and generated samples
       (Salimans et al. 2016).
With `anogan.gan_loss = "wgan_gp"` the GAN is a WGAN-GP instead
(`methods.wgan_gp`): D is a critic without BatchNorm (the DCGAN stack with
LayerNorm, `dcgan.Discriminator(norm="layer")`; the tabular MLP has no
norm), and one `train_step` is `n_critic` critic steps, each on its own
B / n_critic rows of the batch with fresh z, then one G step on
B / n_critic fresh z with loss -mean D(G(z)); G's BatchNorm statistics are
updated by the G step only. Scoring is unchanged.

G and D have separate Adam states (`config.optim`: 2e-4, b1 0.5 by default).
BatchNorm running statistics are updated by every train-mode pass, as in
PyTorch (D: real, fake, then the G step's fake pass).

Scoring (`score`) puts both nets in eval mode and runs the batched latent
search of `ganad_jax.latent_search` with `config.anogan.search`
(`gan.search_fns`); its feature layer is D's `search.feature_layer`.
Outputs: "score" (the search loss), "score_residual" (sum |x - G(z)|),
"score_feature" (sum |f(x) - f(G(z))|), "recon" (G(z)) and, for images, "map"
(|x - G(z)| averaged over channels).

The search's lambda and learning rate live in `state["hparams"]`
("search_lam", "search_lr": float32 scalars set by `init` from the config), so
a vmapped grid can give every member its own; whether the feature term exists
at all is fixed by `config.anogan.search.lam > 0`. The training learning rate
lives in the Adam states (`base.adam`). Losses are float32 whatever
`config.compute_dtype`.

Feature nets (`base.FeatureNet`): "discriminator", D(x) -> (logits, features).
"""

import functools

import jax
import jax.numpy as jnp

from ganad_jax import latent_search
from ganad_jax import losses
from ganad_jax.methods import base
from ganad_jax.methods import gan
from ganad_jax.methods import wgan_gp
from ganad_jax.models import autoencoder
from ganad_jax.models import dcgan
from ganad_jax.models import mlp


GAN_LOSSES = ("bce", "wgan_gp")


class Networks(gan.Nets):
  """AnoGAN's generator and discriminator for one input shape (no encoder)."""

  def __init__(self, config, input_shape: tuple[int, ...]):
    dtype = jnp.dtype(config.compute_dtype)
    is_image = base.check_input_shape(tuple(input_shape), "AnoGAN")
    if is_image and config.anogan.gan_loss == "wgan_gp":
      if config.model.discriminator != "dcgan":
        raise ValueError(f"anogan.gan_loss 'wgan_gp' needs model.discriminator 'dcgan' (its "
                         f"LayerNorm critic); got {config.model.discriminator!r}.")
      discriminator = dcgan.Discriminator(config.model.base_features, dtype, norm="layer")
    elif is_image:
      discriminator = gan.image_discriminator(config, dtype)
    else:
      discriminator = mlp.MLP(tuple(config.anogan.d_widths), 1, dtype=dtype)
    generator = autoencoder.decoder(input_shape, config.model.base_features,
                                    config.anogan.g_widths, dtype)
    super().__init__(generator, discriminator, is_image)


def search_fns(nets: Networks, state, feature_layer: str):
  """Eval-mode closures (generate_fn, feature_fn) over a state (`gan.search_fns`)."""
  generate_fn, feature_fn, _ = gan.search_fns(nets, state["params"], state["batch_stats"],
                                              feature_layer, "anogan.search.feature_layer")
  return generate_fn, feature_fn


def check_config(config) -> None:
  """The checks of AnoGAN's config that need no input shape (ValueError naming the field)."""
  search_config = config.anogan.search
  latent_search.validate(search_config, "anogan.search")
  if config.anogan.gan_loss not in GAN_LOSSES:
    raise ValueError(f"Unknown anogan.gan_loss {config.anogan.gan_loss!r}; choose one of "
                     f"{', '.join(GAN_LOSSES)}.")
  if config.anogan.gan_loss == "wgan_gp":
    wgan_gp.check(config.anogan.n_critic, config.anogan.gp_weight,
                  int(config.train.batch_size), "anogan")
    if config.anogan.feature_matching:
      raise ValueError("anogan.feature_matching is for gan_loss 'bce'; with 'wgan_gp' G's "
                       "loss is -mean D(G(z)). Set one of them back.")
  if search_config.init == "encoder":
    raise ValueError("AnoGAN has no encoder: set anogan.search.init to 'zeros', 'normal' or "
                     "'truncated_normal' (init='encoder' is for methods with an encoder).")


def make(config, input_shape: tuple[int, ...]) -> base.Method:
  """Builds AnoGAN for inputs of shape `input_shape` (no batch axis)."""
  check_config(config)
  search_config = config.anogan.search
  nets = Networks(config, tuple(input_shape))
  nz = int(config.model.nz)
  tx = base.adam(config.optim)
  fm_layer = config.anogan.fm_layer
  feature_matching = bool(config.anogan.feature_matching)

  def init(key, batch):
    g_key, d_key = jax.random.split(key)
    z = jnp.zeros((batch.shape[0], nz), jnp.float32)
    variables = {"g": nets.generator.init(g_key, z, train=False),
                 "d": nets.discriminator.init(d_key, batch, train=False)}
    return gan.init_state(variables, tx, {"search_lam": jnp.asarray(search_config.lam, jnp.float32),
                                          "search_lr": jnp.asarray(search_config.lr, jnp.float32)})

  def train_step(state, batch, key):
    params, stats = state["params"], state["batch_stats"]
    z = jax.random.normal(key, (batch.shape[0], nz), jnp.float32)
    fake, _ = nets.generate(params["g"], stats["g"], z, train=True)
    d_params, d_opt, d_stats, d_metrics, real_feats = gan.d_step(
        functools.partial(nets.discriminate, train=True), tx, params["d"], stats["d"],
        state["opt_state"]["d"], (batch,), (jax.lax.stop_gradient(fake),))
    real_feat = real_feats[fm_layer].astype(jnp.float32)

    def g_loss_fn(g_params):
      fake, g_stats = nets.generate(g_params, stats["g"], z, train=True)
      logit, feats, new_d_stats = nets.discriminate(d_params, d_stats, fake, train=True)
      if feature_matching:
        target = jax.lax.stop_gradient(real_feat.mean(axis=0))
        loss = jnp.sum(jnp.square(feats[fm_layer].astype(jnp.float32).mean(axis=0) - target))
      else:
        loss = losses.bce_with_logits(logit.astype(jnp.float32), 1.0)  # Non-saturating.
      return loss, (g_stats, new_d_stats)

    (g_loss, (g_stats, d_stats)), g_grads = jax.value_and_grad(
        g_loss_fn, has_aux=True)(params["g"])
    g_params, g_opt = base.adam_update(tx, g_grads, state["opt_state"]["g"], params["g"])
    new_state = base.next_state(state, params={"g": g_params, "d": d_params},
                                batch_stats={"g": g_stats, "d": d_stats},
                                opt_state={"g": g_opt, "d": d_opt})
    return new_state, {"loss": d_metrics["d_loss"] + g_loss, "g_loss": g_loss, **d_metrics}

  n_critic, gp_weight = int(config.anogan.n_critic), float(config.anogan.gp_weight)

  def wgan_gp_step(state, batch, key):
    params, stats = state["params"], state["batch_stats"]
    real = wgan_gp.critic_batches(batch, n_critic)
    b = real.shape[1]

    def critic_fn(d_params, x):
      return nets.discriminate(d_params, stats["d"], x, train=True)[0].astype(jnp.float32)

    def make_fake(z_key, n):  # G in train mode; its statistics are not kept (the reference).
      z = jax.random.normal(z_key, (n, nz), jnp.float32)
      return nets.generate(params["g"], stats["g"], z, train=True)[0]

    d_key, g_key = jax.random.split(key)
    d_params, d_opt, d_metrics = wgan_gp.critic_steps(
        critic_fn, make_fake, tx, params["d"], state["opt_state"]["d"], real, d_key, gp_weight)

    def g_loss_fn(g_params):
      z = jax.random.normal(g_key, (b, nz), jnp.float32)
      fake, g_stats = nets.generate(g_params, stats["g"], z, train=True)
      return wgan_gp.generator_loss(critic_fn(d_params, fake)), g_stats

    (g_loss, g_stats), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(params["g"])
    g_params, g_opt = base.adam_update(tx, g_grads, state["opt_state"]["g"], params["g"])
    new_state = base.next_state(state, params={"g": g_params, "d": d_params},
                                batch_stats={"g": g_stats, "d": stats["d"]},
                                opt_state={"g": g_opt, "d": d_opt})
    return new_state, {"loss": d_metrics["d_loss"] + g_loss, "g_loss": g_loss, **d_metrics}

  if config.anogan.gan_loss == "wgan_gp":
    train_step = wgan_gp_step

  def score(state, batch, key):
    generate_fn, feature_fn = search_fns(nets, state, search_config.feature_layer)
    hp = state["hparams"]
    result = latent_search.search(generate_fn, feature_fn, batch, key, search_config, nz,
                                  hparams={"lam": hp["search_lam"], "lr": hp["search_lr"]})
    outputs = {"score": result.score, "score_residual": result.score_residual,
               "recon": result.x_hat}
    if search_config.lam > 0.0:
      outputs["score_feature"] = result.score_feature
    if nets.is_image:
      outputs["map"] = result.residual_map
    return outputs

  def generate(state, z):
    return nets.generate(state["params"]["g"], state["batch_stats"]["g"], z, train=False)[0]

  def discriminator_features(variables, x):
    return nets.discriminator.apply(variables, x, train=False)

  features = {"discriminator": base.FeatureNet(
      lambda state: {"params": state["params"]["d"], "batch_stats": state["batch_stats"]["d"]},
      discriminator_features)}
  return base.Method(init, train_step, score, generate=generate, features=features)
