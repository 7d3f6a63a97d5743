"""GANomaly (Akcay et al. 2018): an encoder-decoder-encoder generator and a discriminator.

Generator G = encoder1 -> decoder -> encoder2: z = E1(x), x_hat = Dec(z),
z_hat = E2(x_hat), two separate encoders. Images go through the DCGAN encoder /
decoder of `models.dcgan`; tabular vectors through MLPs of widths
`config.model.mlp_widths` (decoder reversed, linear output). The
discriminator is `config.model.discriminator` for images ("dcgan", the
reference's, or "patch", `models.patch`; BCE over all patch logits) and an MLP
with one logit for vectors.

One `train_step` is one G step then one D step, as the reference
(samet-akcay/ganomaly), both on the networks as they were before the step:
    G: w_adv * mean((f_D(x) - f_D(x_hat))^2)    feature matching on D's
                                                 "penultimate" features
     + w_con * mean|x - x_hat|
     + w_enc * mean((z - z_hat)^2)
    D: (BCE(D(x), 1) + BCE(D(x_hat), 0)) / 2     (the reference's factor 1/2)
With `reinit_d_below` > 0, D's parameters are drawn afresh (with the step key)
when the D loss of the step falls below it (the reference uses 1e-5); its
Adam state and BatchNorm statistics are kept, as in the reference. BatchNorm
running statistics are updated by every train-mode pass, as in PyTorch.

The loss weights live in `state["hparams"]` (float32 scalars set by `init` from
`config.ganomaly`), so that a vmapped grid can give every member its own; the
learning rate lives in the Adam state (`base.adam`).

Scoring puts every net in eval mode (the reference leaves BatchNorm in train
mode at test, which lets test images influence each other). Outputs: "score"
= mean((z - z_hat)^2) over latent dims (the paper's score, raw, no min-max),
"score_recon" = mean|x - x_hat|, "recon" = x_hat and, for images, "map" =
|x - x_hat| averaged over channels (the reference has no map).
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from ganad_jax import losses
from ganad_jax.methods import base
from ganad_jax.models import autoencoder
from ganad_jax.models import mlp
from ganad_jax.models import patch

FEATURE_LAYER = "penultimate"  # The references' f_D: D without its last conv.


# --- Helpers shared with Skip-GANomaly. -------------------------------------


def check_weights(section: ml_collections.ConfigDict, prefix: str, names) -> None:
  """ValueError naming the field unless every `names` weight is finite and >= 0."""
  for name in names:
    value = float(section[name])
    if not math.isfinite(value) or value < 0.0:
      raise ValueError(f"{prefix}.{name}={section[name]!r} must be a finite number >= 0.")


def hparams(section: ml_collections.ConfigDict, names) -> dict[str, jax.Array]:
  """`state["hparams"]`: float32 scalars from the config, vmappable per grid member."""
  return {name: jnp.asarray(section[name], jnp.float32) for name in names}


def image_discriminator(config, dtype) -> nn.Module:
  return patch.make_discriminator(config.model.discriminator, config.model.base_features,
                                  config.model.patch_layers, dtype)


def apply(module: nn.Module, params, batch_stats, x, train: bool):
  """(module output, batch stats): the updated stats in train mode, else the given ones."""
  variables = {"params": params, "batch_stats": batch_stats}
  if train:
    out, updates = module.apply(variables, x, train=True, mutable=["batch_stats"])
    return out, updates.get("batch_stats", batch_stats)
  return module.apply(variables, x, train=False), batch_stats


def discriminate(module: nn.Module, params, batch_stats, x, train: bool):
  """(logits (N, P), f_D features (N, ...) float32, batch stats); P = 1 for DCGAN and MLP."""
  (logits, features), batch_stats = apply(module, params, batch_stats, x, train)
  feature = features[FEATURE_LAYER].astype(jnp.float32)  # Losses in float32 under bfloat16.
  return logits.reshape(x.shape[0], -1), feature, batch_stats


def d_step(module: nn.Module, tx, d_params, d_stats, d_opt, real, fake, scale: float,
           reinit_below: float, init_fn, key):
  """One Adam step of D by BCE(D(real), 1) + BCE(D(fake), 0), then `maybe_reinit`.

  The GAN half GANomaly and Skip-GANomaly share: D learns after G's step, on
  the fake G made before it (the references' order).

  Args:
    module: the discriminator; `discriminate` applies it.
    tx, d_params, d_stats, d_opt: its optimiser, parameters, batch stats and
      optimiser state.
    real, fake: image batches; no gradient flows back through `fake`.
    scale: weight of the summed BCE terms (GANomaly's reference averages them:
      0.5; Skip-GANomaly's sums them: 1.0).
    reinit_below, init_fn, key: see `maybe_reinit`; 0 disables it.

  Returns:
    (params, opt_state, batch_stats, metrics): metrics d_loss, mean D(real)
    "d_real", mean D(fake) "d_fake" over all patches, and "d_reinit" if enabled.
  """
  fake = jax.lax.stop_gradient(fake)

  def loss_fn(params):
    real_logits, _, new_stats = discriminate(module, params, d_stats, real, True)
    fake_logits, _, new_stats = discriminate(module, params, new_stats, fake, True)
    loss = scale * (losses.bce_with_logits(real_logits, 1.0)
                    + losses.bce_with_logits(fake_logits, 0.0))
    return loss, (new_stats, jax.nn.sigmoid(real_logits).mean(),
                  jax.nn.sigmoid(fake_logits).mean())

  (loss, (d_stats, d_real, d_fake)), grads = jax.value_and_grad(loss_fn, has_aux=True)(d_params)
  d_params, d_opt = base.adam_update(tx, grads, d_opt, d_params)
  metrics = {"d_loss": loss, "d_real": d_real, "d_fake": d_fake}
  if reinit_below > 0.0:
    d_params, metrics["d_reinit"] = maybe_reinit(d_params, loss, reinit_below, init_fn, key)
  return d_params, d_opt, d_stats, metrics


def maybe_reinit(d_params, d_loss, threshold: float, init_fn, key):
  """(params, reinitialised as float32): `init_fn(key)` where `d_loss < threshold`.

  `lax.cond` skips the init when not needed; under vmap it becomes a select,
  so each grid member re-initialises on its own loss.
  """
  reinit = d_loss < threshold
  params = jax.lax.cond(reinit, lambda: init_fn(key), lambda: d_params)
  return params, reinit.astype(jnp.float32)


# --- GANomaly. ---------------------------------------------------------------


class Generator(autoencoder.EncoderDecoder):
  """x -> (x_hat, z, z_hat): encoder1 -> decoder -> encoder2 (fields: `EncoderDecoder`)."""

  def setup(self):
    self.encoder1 = self.make_encoder(self.nz)
    self.decoder = self.make_decoder()
    self.encoder2 = self.make_encoder(self.nz)  # Same shape as encoder1, its own parameters.

  def __call__(self, x, train: bool = True):
    z, _ = self.encoder1(x, train)
    x_hat = self.decoder(z, train)
    x_hat = x_hat[0] if isinstance(x_hat, tuple) else x_hat  # The MLP returns (out, features).
    z_hat, _ = self.encoder2(x_hat, train)
    return x_hat, z, z_hat


class Networks:
  """GANomaly's generator and discriminator for one input shape."""

  def __init__(self, config, input_shape: tuple[int, ...]):
    dtype = jnp.dtype(config.compute_dtype)
    self.is_image = len(input_shape) == 3
    if self.is_image:
      if input_shape[0] != input_shape[1]:
        raise ValueError(f"GANomaly's DCGAN nets need square images; got {input_shape}.")
      self.discriminator = image_discriminator(config, dtype)
    elif len(input_shape) == 1:
      if config.model.discriminator != "dcgan":
        raise ValueError(f"config.model.discriminator={config.model.discriminator!r} is for "
                         f"images; vectors of shape {input_shape} use an MLP discriminator "
                         "(leave it 'dcgan').")
      self.discriminator = mlp.MLP(tuple(config.model.mlp_widths), 1, dtype=dtype)
    else:
      raise ValueError(f"GANomaly takes images (H, W, C) or vectors (F,); got {input_shape}.")
    self.generator = Generator(tuple(input_shape), int(config.model.nz),
                               int(config.model.base_features),
                               tuple(config.model.mlp_widths), dtype)

  def init_d(self, key, batch):
    """Fresh D variables (the shapes do not depend on the batch size)."""
    return self.discriminator.init(key, batch[:1], train=False)


WEIGHTS = ("w_adv", "w_con", "w_enc")


def make(config, input_shape: tuple[int, ...]) -> base.Method:
  """Builds GANomaly for inputs of shape `input_shape` (no batch axis)."""
  check_weights(config.ganomaly, "config.ganomaly", WEIGHTS + ("reinit_d_below",))
  nets = Networks(config, tuple(input_shape))
  tx = base.adam(config.optim)
  reinit_below = float(config.ganomaly.reinit_d_below)

  def init(key, batch):
    g_key, d_key = jax.random.split(key)
    g_vars = nets.generator.init(g_key, batch, train=False)
    d_vars = nets.init_d(d_key, batch)
    params = {"g": g_vars["params"], "d": d_vars["params"]}
    return {"step": jnp.zeros((), jnp.int32), "params": params,
            "batch_stats": {"g": g_vars.get("batch_stats", {}),
                            "d": d_vars.get("batch_stats", {})},
            "opt_state": {"g": tx.init(params["g"]), "d": tx.init(params["d"])},
            "hparams": hparams(config.ganomaly, WEIGHTS)}

  def train_step(state, batch, key):
    params, stats, hp = state["params"], state["batch_stats"], state["hparams"]
    # D(x)'s features are the feature-matching target: constant for G.
    _, real_feat, d_stats = discriminate(nets.discriminator, params["d"], stats["d"], batch, True)
    real_feat = jax.lax.stop_gradient(real_feat)

    def g_loss_fn(g_params):
      (fake, z, z_hat), g_stats = apply(nets.generator, g_params, stats["g"], batch, True)
      _, fake_feat, new_d_stats = discriminate(nets.discriminator, params["d"], d_stats, fake,
                                               True)
      adv = jnp.mean(jnp.square(real_feat - fake_feat))
      con = jnp.mean(jnp.abs(batch - fake))
      enc = jnp.mean(jnp.square(z - z_hat))
      loss = hp["w_adv"] * adv + hp["w_con"] * con + hp["w_enc"] * enc
      return loss, (fake, g_stats, new_d_stats, adv, con, enc)

    (g_loss, (fake, g_stats, d_stats, adv, con, enc)), g_grads = jax.value_and_grad(
        g_loss_fn, has_aux=True)(params["g"])
    g_params, g_opt = base.adam_update(tx, g_grads, state["opt_state"]["g"], params["g"])
    d_params, d_opt, d_stats, d_metrics = d_step(
        nets.discriminator, tx, params["d"], d_stats, state["opt_state"]["d"], batch, fake, 0.5,
        reinit_below, lambda k: nets.init_d(k, batch)["params"], key)
    metrics = {"loss": g_loss + d_metrics["d_loss"], "g_loss": g_loss, "g_adv": adv,
               "g_con": con, "g_enc": enc, **d_metrics}

    new_state = {"step": state["step"] + 1, "params": {"g": g_params, "d": d_params},
                 "batch_stats": {"g": g_stats, "d": d_stats},
                 "opt_state": {"g": g_opt, "d": d_opt}, "hparams": hp}
    return new_state, metrics

  def score(state, batch, key):
    del key  # Deterministic.
    (x_hat, z, z_hat), _ = apply(nets.generator, state["params"]["g"],
                                 state["batch_stats"]["g"], batch, False)
    residual = jnp.abs(batch - x_hat)
    outputs = {"score": jnp.mean(jnp.square(z - z_hat), axis=1),
               "score_recon": losses.per_sample_mean(residual), "recon": x_hat}
    if nets.is_image:
      outputs["map"] = residual.mean(axis=-1)
    return outputs

  return base.Method(init, train_step, score)
