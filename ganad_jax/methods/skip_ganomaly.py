"""Skip-GANomaly (Akcay et al. 2019): a U-Net generator and a discriminator. Images only.

G is the pix2pix U-Net of `models.unet` (log2(size) down-samplings to 1x1,
skip connections, BatchNorm, no dropout); D is `config.model.discriminator`
("dcgan", the reference's, or "patch"; BCE over all patch logits). f_D is D's
"penultimate" feature map.

One `train_step` is one G step then one D step, both on the networks as they
were before the step (samet-akcay/skip-ganomaly's order):
    G: w_adv * BCE(D(x_hat), 1) + w_con * mean|x - x_hat|
       + w_lat * mean((f_D(x) - f_D(x_hat))^2)
    D: BCE(D(x), 1) + BCE(D(x_hat), 0)
The reference also adds G's latent term to D's loss and feeds G "noise" from
uninitialised memory; neither is in the paper and neither is done here. With
`reinit_d_below` > 0, D's parameters are drawn afresh (with the step key) when
its loss falls below it (reference: 1e-5).

The loss weights and the score's lambda live in `state["hparams"]` (float32
scalars set by `init` from `config.skip_ganomaly`), so that a vmapped grid can
give every member its own.

Scoring is in eval mode: "score" = lambda * rec + (1 - lambda) * feature, with
rec = mean((x - x_hat)^2) (the reference's; `score_rec="l1"` gives the
paper's mean|x - x_hat|) and feature = mean((f_D(x) - f_D(x_hat))^2), raw (no
min-max). Also "score_recon" (rec), "score_feature" (feature), "recon" and
"map" (the per-pixel rec residual averaged over channels; its mean is rec).
"""

import jax
import jax.numpy as jnp

from ganad_jax import losses
from ganad_jax.methods import base
from ganad_jax.methods import ganomaly
from ganad_jax.models import unet

SCORE_RECS = ("l2", "l1")


HPARAMS = ("w_adv", "w_con", "w_lat", "score_lambda")


def make(config, input_shape: tuple[int, ...]) -> base.Method:
  """Builds Skip-GANomaly for images of shape (H, W, C)."""
  input_shape = tuple(input_shape)
  if len(input_shape) != 3:
    raise ValueError(f"skip_ganomaly needs images (H, W, C); got inputs of shape {input_shape}"
                     ": use 'ganomaly' for tabular vectors.")
  if input_shape[0] != input_shape[1]:
    raise ValueError(f"Skip-GANomaly's nets need square images; got {input_shape}.")
  section = config.skip_ganomaly
  ganomaly.check_weights(section, "config.skip_ganomaly",
                         ("w_adv", "w_con", "w_lat", "reinit_d_below"))
  if not 0.0 <= float(section.score_lambda) <= 1.0:
    raise ValueError(f"config.skip_ganomaly.score_lambda={section.score_lambda!r} must be in "
                     "[0, 1].")
  if section.score_rec not in SCORE_RECS:
    raise ValueError(f"config.skip_ganomaly.score_rec={section.score_rec!r}; choose one of "
                     f"{', '.join(SCORE_RECS)}.")
  dtype = jnp.dtype(config.compute_dtype)
  unet.num_levels(input_shape[0])  # Fail at build time on a bad size.
  generator = unet.UNet(input_shape[2], int(config.model.base_features), dtype)
  discriminator = ganomaly.image_discriminator(config, dtype)
  tx = base.adam(config.optim)
  reinit_below = float(section.reinit_d_below)
  residual_fn = jnp.square if section.score_rec == "l2" else jnp.abs

  def init_d(key, batch):
    return discriminator.init(key, batch[:1], train=False)

  def init(key, batch):
    g_key, d_key = jax.random.split(key)
    g_vars = generator.init(g_key, batch, train=False)
    d_vars = init_d(d_key, batch)
    params = {"g": g_vars["params"], "d": d_vars["params"]}
    return {"step": jnp.zeros((), jnp.int32), "params": params,
            "batch_stats": {"g": g_vars["batch_stats"], "d": d_vars["batch_stats"]},
            "opt_state": {"g": tx.init(params["g"]), "d": tx.init(params["d"])},
            "hparams": ganomaly.hparams(section, HPARAMS)}

  def train_step(state, batch, key):
    params, stats, hp = state["params"], state["batch_stats"], state["hparams"]
    _, real_feat, d_stats = ganomaly.discriminate(discriminator, params["d"], stats["d"],
                                                  batch, True)
    real_feat = jax.lax.stop_gradient(real_feat)

    def g_loss_fn(g_params):
      fake, g_stats = ganomaly.apply(generator, g_params, stats["g"], batch, True)
      logits, fake_feat, new_d_stats = ganomaly.discriminate(discriminator, params["d"],
                                                             d_stats, fake, True)
      adv = losses.bce_with_logits(logits, 1.0)  # Non-saturating.
      con = jnp.mean(jnp.abs(batch - fake))
      lat = jnp.mean(jnp.square(real_feat - fake_feat))
      loss = hp["w_adv"] * adv + hp["w_con"] * con + hp["w_lat"] * lat
      return loss, (fake, g_stats, new_d_stats, adv, con, lat)

    (g_loss, (fake, g_stats, d_stats, adv, con, lat)), g_grads = jax.value_and_grad(
        g_loss_fn, has_aux=True)(params["g"])
    g_params, g_opt = base.adam_update(tx, g_grads, state["opt_state"]["g"], params["g"])
    d_params, d_opt, d_stats, d_metrics = ganomaly.d_step(
        discriminator, tx, params["d"], d_stats, state["opt_state"]["d"], batch, fake, 1.0,
        reinit_below, lambda k: init_d(k, batch)["params"], key)
    metrics = {"loss": g_loss + d_metrics["d_loss"], "g_loss": g_loss, "g_adv": adv,
               "g_con": con, "g_lat": lat, **d_metrics}

    new_state = {"step": state["step"] + 1, "params": {"g": g_params, "d": d_params},
                 "batch_stats": {"g": g_stats, "d": d_stats},
                 "opt_state": {"g": g_opt, "d": d_opt}, "hparams": hp}
    return new_state, metrics

  def score(state, batch, key):
    del key  # Deterministic.
    params, stats = state["params"], state["batch_stats"]
    x_hat, _ = ganomaly.apply(generator, params["g"], stats["g"], batch, False)
    _, real_feat, _ = ganomaly.discriminate(discriminator, params["d"], stats["d"], batch, False)
    _, fake_feat, _ = ganomaly.discriminate(discriminator, params["d"], stats["d"], x_hat, False)
    rec_map = residual_fn(batch - x_hat).mean(axis=-1)
    rec = losses.per_sample_mean(rec_map)
    feature = losses.per_sample_mean(jnp.square(real_feat - fake_feat))
    lam = state["hparams"]["score_lambda"]
    return {"score": lam * rec + (1.0 - lam) * feature, "score_recon": rec,
            "score_feature": feature, "recon": x_hat, "map": rec_map}

  return base.Method(init, train_step, score)
