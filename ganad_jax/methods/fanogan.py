"""f-AnoGAN (Schlegl et al., Medical Image Analysis 2019): WGAN-GP, then an encoder; one pass to score.

A port of tSchlegl/f-AnoGAN (TF 1.2; experiments/reference/fanogan.md
compares it item by item). Images only, any power-of-two size >= 16 the
loaders make (`models.fanogan`: ResNet generator, LayerNorm critic, BatchNorm
encoder, width `fanogan.dim`).

Both stages are one run of the one training loop; the stage boundary is a
step count:
  steps [0, gan_steps): WGAN-GP (`methods.wgan_gp`). One step: n_critic
    critic steps (Adam `config.optim`), each on its own b = B / n_critic rows
    of the batch with a fresh z ~ N(0, I) (G in train mode, its BatchNorm
    statistics not kept, as the reference runs the critic op), then one
    generator step on b fresh z (G's statistics updated).
  steps [gan_steps, gan_steps + encoder_steps): the encoder, G and the critic
    frozen (G in eval mode, E in train mode), RMSProp (`encoder_lr`, TF1's) on
    the first b rows of the batch (the reference's batch of 64), loss
    `encoder_loss`:
      izi   = MSE(x, G(E(x)))
      ziz   = MSE(z, E(G(z))), z ~ N(0, I)
      izi_f = izi + kappa * MSE(f(x), f(G(E(x)))), f = the critic's flattened
              last conv features ("penultimate").
`train_step` chooses the stage with `lax.cond` on `state["step"]`: the step
lives in the state, so a run resumed from any checkpoint (before, at or after
the boundary) continues in the right stage with the same program, and the
loop, checkpoints and resume need nothing of their own; cond runs one branch
(under an ensemble's vmap it becomes a select and runs both). Both branches
return the same metrics (the other stage's as 0) and "stage" (0 GAN, 1 encoder).

Score (anomaly_detection.py with dual_iloss), eval mode, per sample:
    score = MSE(x, G(E(x))) + kappa * MSE(f(x), f(G(E(x))))
Outputs: "score", "score_image" and "score_feature" (its two terms, kappa
not applied), "recon" G(E(x)) and "map" (x - G(E(x)))^2 averaged over
channels (N, H, W). `kappa` lives in `state["hparams"]` (vmappable).

Feature nets (`base.FeatureNet`): "discriminator" (the critic), "encoder".
"""

import jax
import jax.numpy as jnp
import optax

from ganad_jax.configs.methods import fanogan as fanogan_config
from ganad_jax.methods import base
from ganad_jax.methods import gan
from ganad_jax.methods import wgan_gp
from ganad_jax.models import fanogan as nets_lib


def _mse(a, b):
  """Per-sample mean squared difference, (N,) float32."""
  return jnp.square(a - b).reshape(a.shape[0], -1).mean(axis=1)


def check_config(config) -> None:
  """The checks of f-AnoGAN's config that need no input shape (ValueError naming the field)."""
  fanogan_config.check(config)
  cfg = config.fanogan
  wgan_gp.check(cfg.n_critic, cfg.gp_weight, int(config.train.batch_size), "fanogan")
  total = int(cfg.gan_steps) + int(cfg.encoder_steps)
  if int(config.train.num_steps) != total:
    raise ValueError(f"train.num_steps={config.train.num_steps!r} must equal "
                     f"fanogan.gan_steps + fanogan.encoder_steps = {total} (the run trains the "
                     "GAN, then the encoder).")


def rmsprop_tf1(lr: float):
  """TF1's RMSPropOptimizer: decay 0.9, eps 1e-10 inside the root, accumulator started at 1."""
  return optax.rmsprop(lr, decay=0.9, eps=1e-10, initial_scale=1.0, eps_in_sqrt=True)


def make(config, input_shape: tuple[int, ...]) -> base.Method:
  """Builds f-AnoGAN for images of shape `input_shape` (H, H, C).

  Raises:
    ValueError: vectors or non-square images, or a config field it cannot
      take (`check_config`), naming it.
  """
  check_config(config)
  base.check_input_shape(tuple(input_shape), "f-AnoGAN",
                         images_only="f-AnoGAN's ResNets are convolutional")
  cfg = config.fanogan
  dtype = jnp.dtype(config.compute_dtype)
  size, _, channels = input_shape
  nz, dim = int(config.model.nz), int(cfg.dim)
  generator = nets_lib.Generator(size, channels, dim, dtype)
  critic = nets_lib.Critic(dim, dtype)
  encoder = nets_lib.Encoder(nz, dim, bool(cfg.encoder_tanh), dtype)
  adam = base.adam(config.optim)
  rmsprop = rmsprop_tf1(float(cfg.encoder_lr))
  gan_steps, n_critic = int(cfg.gan_steps), int(cfg.n_critic)
  encoder_loss = cfg.encoder_loss

  def init(key, batch):
    g_key, d_key, e_key = jax.random.split(key, 3)
    z = jnp.zeros((1, nz), jnp.float32)
    variables = {"g": generator.init(g_key, z, train=False),
                 "d": critic.init(d_key, batch[:1], train=False),
                 "e": encoder.init(e_key, batch[:1], train=False)}
    state = gan.init_state(variables, adam, base.hparams(cfg, ("kappa", "gp_weight")))
    state["opt_state"]["e"] = rmsprop.init(state["params"]["e"])
    return state

  def critic_fn(d_params, x):
    return critic.apply({"params": d_params}, x, train=True)[0]

  def features_fn(d_params, x):
    return critic.apply({"params": d_params}, x, train=False)[1]["penultimate"]

  def gan_step(state, batch, key):
    params, stats, hp = state["params"], state["batch_stats"], state["hparams"]
    real = wgan_gp.critic_batches(batch.astype(jnp.float32), n_critic)
    b = real.shape[1]

    def make_fake(z_key, n):  # G in train mode; its statistics are not kept.
      z = jax.random.normal(z_key, (n, nz), jnp.float32)
      return base.apply(generator, params["g"], stats["g"], z, train=True)[0]

    d_key, g_key = jax.random.split(key)
    d_params, d_opt, d_metrics = wgan_gp.critic_steps(
        critic_fn, make_fake, adam, params["d"], state["opt_state"]["d"], real, d_key,
        hp["gp_weight"])

    def g_loss_fn(g_params):
      z = jax.random.normal(g_key, (b, nz), jnp.float32)
      fake, g_stats = base.apply(generator, g_params, stats["g"], z, train=True)
      return wgan_gp.generator_loss(critic_fn(d_params, fake)), g_stats

    (g_loss, g_stats), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(params["g"])
    g_params, g_opt = base.adam_update(adam, g_grads, state["opt_state"]["g"], params["g"])
    new_state = base.next_state(
        state, params={**params, "g": g_params, "d": d_params},
        batch_stats={**stats, "g": g_stats},
        opt_state={**state["opt_state"], "g": g_opt, "d": d_opt})
    zero = jnp.zeros((), jnp.float32)
    metrics = {"loss": d_metrics["d_loss"] + g_loss, "g_loss": g_loss, **d_metrics,
               "e_loss": zero, "e_image": zero, "e_feature": zero, "stage": zero}
    return new_state, metrics

  def encoder_step(state, batch, key):
    params, stats, hp = state["params"], state["batch_stats"], state["hparams"]
    x = batch[:batch.shape[0] // n_critic].astype(jnp.float32)

    def generate(z):  # Frozen G, eval mode.
      return base.apply(generator, params["g"], stats["g"], z, train=False)[0]

    def e_loss_fn(e_params):
      zero = jnp.zeros((), jnp.float32)
      if encoder_loss == "ziz":
        z = jax.random.normal(key, (x.shape[0], nz), jnp.float32)
        (z_hat, _), e_stats = base.apply(encoder, e_params, stats["e"], generate(z), train=True)
        loss = jnp.mean(jnp.square(z - z_hat))
        return loss, (e_stats, zero, zero)
      (z, _), e_stats = base.apply(encoder, e_params, stats["e"], x, train=True)
      recon = generate(z)
      image = jnp.mean(jnp.square(x - recon))
      if encoder_loss == "izi":
        return image, (e_stats, image, zero)
      feature = jnp.mean(jnp.square(features_fn(params["d"], recon)
                                    - jax.lax.stop_gradient(features_fn(params["d"], x))))
      return image + hp["kappa"] * feature, (e_stats, image, feature)

    (e_loss, (e_stats, image, feature)), e_grads = jax.value_and_grad(
        e_loss_fn, has_aux=True)(params["e"])
    updates, e_opt = rmsprop.update(e_grads, state["opt_state"]["e"], params["e"])
    e_params = optax.apply_updates(params["e"], updates)
    new_state = base.next_state(state, params={**params, "e": e_params},
                                batch_stats={**stats, "e": e_stats},
                                opt_state={**state["opt_state"], "e": e_opt})
    zero = jnp.zeros((), jnp.float32)
    metrics = {"loss": e_loss, "g_loss": zero, "d_loss": zero, "wasserstein": zero,
               "gp": zero, "e_loss": e_loss, "e_image": image, "e_feature": feature,
               "stage": jnp.ones((), jnp.float32)}
    return new_state, metrics

  def train_step(state, batch, key):
    # One program for both stages, chosen by the step in the state (see the module doc).
    return jax.lax.cond(state["step"] < gan_steps, gan_step, encoder_step, state, batch, key)

  def score(state, batch, key):
    del key  # Deterministic.
    params, stats = state["params"], state["batch_stats"]
    x = batch.astype(jnp.float32)
    (z, _), _ = base.apply(encoder, params["e"], stats["e"], x, train=False)
    recon, _ = base.apply(generator, params["g"], stats["g"], z, train=False)
    score_image = _mse(x, recon)
    score_feature = _mse(features_fn(params["d"], x), features_fn(params["d"], recon))
    return {"score": score_image + state["hparams"]["kappa"] * score_feature,
            "score_image": score_image, "score_feature": score_feature, "recon": recon,
            "map": jnp.square(x - recon).mean(axis=-1)}

  def generate(state, z):
    return base.apply(generator, state["params"]["g"], state["batch_stats"]["g"], z,
                      train=False)[0]

  def apply_critic(variables, x):
    return critic.apply({"params": variables["params"]}, x, train=False)

  def apply_encoder(variables, x):
    return encoder.apply(variables, x, train=False)

  features = {
      "discriminator": base.FeatureNet(lambda s: {"params": s["params"]["d"]}, apply_critic),
      "encoder": base.FeatureNet(
          lambda s: {"params": s["params"]["e"], "batch_stats": s["batch_stats"]["e"]},
          apply_encoder)}
  return base.Method(init, train_step, score, generate=generate, features=features)
