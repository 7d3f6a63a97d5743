"""AnoGAN (Schlegl et al. 2017): a GAN trained on normal data, scored by latent search.

Training is a DCGAN on normal data only: images go through the DCGAN decoder
(G) and discriminator (D) of `models.dcgan` (N(0, 0.02) init, BatchNorm,
LeakyReLU 0.2 in D, tanh out), tabular vectors through MLPs (`g_widths`,
`d_widths`; linear output, since tabular features are standardised, not in
[-1, 1]). z ~ N(0, I) of size `config.model.nz`. With
`config.model.discriminator = "patch"` D is the PatchGAN of `models.patch`
(one logit per patch; the GAN losses average over patches).

One `train_step` is one D step then one G step on the same z (the PyTorch DCGAN
order), with the standard non-saturating losses:
    D: BCE(D(x), 1) + BCE(D(G(z)), 0)
    G: BCE(D(G(z)), 1), or with `feature_matching` the squared distance between
       the batch means of D's `fm_layer` on real and generated samples
       (Salimans et al. 2016).
G and D have separate Adam states (`config.optim`: 2e-4, b1 0.5 by default).
BatchNorm running statistics are updated by every train-mode pass, as in
PyTorch (D: real, fake, then the G step's fake pass).

Scoring (`score`) puts both nets in eval mode and runs the batched latent
search of `ganad_jax.latent_search` with `config.anogan.search`; its feature
layer is D's `search.feature_layer`. Outputs: "score" (the search loss),
"score_residual" (sum |x - G(z)|), "score_feature" (sum |f(x) - f(G(z))|),
"recon" (G(z)) and, for images, "map" (|x - G(z)| averaged over channels).

The search's lambda and learning rate live in `state["hparams"]`
("search_lam", "search_lr": float32 scalars set by `init` from the config), so
a vmapped grid can give every member its own; whether the feature term exists
at all is fixed by `config.anogan.search.lam > 0`. The training learning rate
lives in the Adam states (`base.adam`). Losses are float32 whatever
`config.compute_dtype`.
"""

import jax
import jax.numpy as jnp

from ganad_jax import latent_search
from ganad_jax import losses
from ganad_jax.methods import base
from ganad_jax.models import dcgan
from ganad_jax.models import mlp
from ganad_jax.models import patch
from ganad_jax.xla_cpu import fast_conv


class Networks:
  """The generator and discriminator for one input shape, and how to call them."""

  def __init__(self, config, input_shape: tuple[int, ...]):
    dtype = jnp.dtype(config.compute_dtype)
    self.is_image = len(input_shape) == 3
    if self.is_image:
      size, width, channels = input_shape
      if size != width:
        raise ValueError(f"AnoGAN's DCGAN nets need square images; got {input_shape}.")
      self.generator = dcgan.Decoder(size, channels, config.model.base_features, dtype)
      self.discriminator = patch.make_discriminator(
          config.model.discriminator, config.model.base_features, config.model.patch_layers, dtype)
    elif len(input_shape) == 1:
      self.generator = mlp.MLP(tuple(config.anogan.g_widths), input_shape[0], dtype=dtype)
      self.discriminator = mlp.MLP(tuple(config.anogan.d_widths), 1, dtype=dtype)
    else:
      raise ValueError(f"AnoGAN takes images (H, W, C) or vectors (F,); got {input_shape}.")

  def generate(self, params, batch_stats, z, train: bool):
    """G(z); in train mode also returns the updated batch stats."""
    variables = {"params": params, "batch_stats": batch_stats}
    if train and self.is_image:
      out, updates = self.generator.apply(variables, z, train=True, mutable=["batch_stats"])
      return out, updates["batch_stats"]
    out = self.generator.apply(variables, z, train=train)
    out = out[0] if isinstance(out, tuple) else out  # The MLP returns (output, features).
    return (out, batch_stats) if train else out

  def discriminate(self, params, batch_stats, x, train: bool):
    """(logits (N * patches,), features dict); in train mode also the updated batch stats."""
    variables = {"params": params, "batch_stats": batch_stats}
    if train and self.is_image:
      (logit, feats), updates = self.discriminator.apply(
          variables, x, train=True, mutable=["batch_stats"])
      return logit.reshape(-1), feats, updates["batch_stats"]
    logit, feats = self.discriminator.apply(variables, x, train=train)
    logit = logit.reshape(-1)
    return (logit, feats, batch_stats) if train else (logit, feats)


def search_fns(nets: Networks, state, feature_layer: str):
  """Eval-mode closures (generate_fn, feature_fn) over a state, for `latent_search.search`.

  Call it outside the search (as `score` does): for conv nets it precomputes
  the flipped kernels that keep the search's gradients fast inside its loop
  (`fast_conv.apply_fast`).
  """
  params, stats = state["params"], state["batch_stats"]
  g_vars = {"params": params["g"], "batch_stats": stats["g"]}
  d_vars = {"params": params["d"], "batch_stats": stats["d"]}

  if nets.is_image:
    g_kernels = fast_conv.backward_kernels(params["g"])
    d_kernels = fast_conv.backward_kernels(params["d"])

    def generate_fn(z):
      return fast_conv.apply_fast(nets.generator, g_vars, g_kernels, z, train=False)

    def features(x):
      return fast_conv.apply_fast(nets.discriminator, d_vars, d_kernels, x, train=False)[1]
  else:
    def generate_fn(z):
      return nets.generate(params["g"], stats["g"], z, train=False)

    def features(x):
      return nets.discriminate(params["d"], stats["d"], x, train=False)[1]

  def feature_fn(x):
    feats = features(x)
    if feature_layer not in feats:
      raise ValueError(f"Unknown discriminator layer {feature_layer!r} "
                       f"(anogan.search.feature_layer); known: {', '.join(sorted(feats))}.")
    return feats[feature_layer]

  return generate_fn, feature_fn


def make(config, input_shape: tuple[int, ...]) -> base.Method:
  """Builds AnoGAN for inputs of shape `input_shape` (no batch axis)."""
  search_config = config.anogan.search
  latent_search.validate(search_config)
  if search_config.init == "encoder":
    raise ValueError("AnoGAN has no encoder: set anogan.search.init to 'zeros', 'normal' or "
                     "'truncated_normal' (init='encoder' is for methods with an encoder).")
  nets = Networks(config, tuple(input_shape))
  nz = int(config.model.nz)
  tx = base.adam(config.optim)
  fm_layer = config.anogan.fm_layer
  feature_matching = bool(config.anogan.feature_matching)

  def init(key, batch):
    g_key, d_key = jax.random.split(key)
    z = jnp.zeros((batch.shape[0], nz), jnp.float32)
    g_vars = nets.generator.init(g_key, z, train=False)
    d_vars = nets.discriminator.init(d_key, batch, train=False)
    params = {"g": g_vars["params"], "d": d_vars["params"]}
    return {"step": jnp.zeros((), jnp.int32), "params": params,
            "batch_stats": {"g": g_vars.get("batch_stats", {}),
                            "d": d_vars.get("batch_stats", {})},
            "opt_state": {"g": tx.init(params["g"]), "d": tx.init(params["d"])},
            "hparams": {"search_lam": jnp.asarray(search_config.lam, jnp.float32),
                        "search_lr": jnp.asarray(search_config.lr, jnp.float32)}}

  def train_step(state, batch, key):
    params, stats = state["params"], state["batch_stats"]
    z = jax.random.normal(key, (batch.shape[0], nz), jnp.float32)
    fake, _ = nets.generate(params["g"], stats["g"], z, train=True)
    fake = jax.lax.stop_gradient(fake)

    def d_loss_fn(d_params):
      real_logit, real_feats, d_stats = nets.discriminate(d_params, stats["d"], batch, True)
      fake_logit, _, d_stats = nets.discriminate(d_params, d_stats, fake, True)
      real_logit, fake_logit = real_logit.astype(jnp.float32), fake_logit.astype(jnp.float32)
      loss = losses.bce_with_logits(real_logit, 1.0) + losses.bce_with_logits(fake_logit, 0.0)
      aux = (d_stats, jax.nn.sigmoid(real_logit).mean(), jax.nn.sigmoid(fake_logit).mean(),
             real_feats[fm_layer].astype(jnp.float32))
      return loss, aux

    (d_loss, (d_stats, d_real, d_fake, real_feat)), d_grads = jax.value_and_grad(
        d_loss_fn, has_aux=True)(params["d"])
    d_params, d_opt = base.adam_update(tx, d_grads, state["opt_state"]["d"], params["d"])

    def g_loss_fn(g_params):
      fake, g_stats = nets.generate(g_params, stats["g"], z, train=True)
      logit, feats, new_d_stats = nets.discriminate(d_params, d_stats, fake, True)
      if feature_matching:
        target = jax.lax.stop_gradient(real_feat.mean(axis=0))
        loss = jnp.sum(jnp.square(feats[fm_layer].astype(jnp.float32).mean(axis=0) - target))
      else:
        loss = losses.bce_with_logits(logit.astype(jnp.float32), 1.0)  # Non-saturating.
      return loss, (g_stats, new_d_stats)

    (g_loss, (g_stats, d_stats)), g_grads = jax.value_and_grad(
        g_loss_fn, has_aux=True)(params["g"])
    g_params, g_opt = base.adam_update(tx, g_grads, state["opt_state"]["g"], params["g"])

    new_state = {"step": state["step"] + 1, "params": {"g": g_params, "d": d_params},
                 "batch_stats": {"g": g_stats, "d": d_stats},
                 "opt_state": {"g": g_opt, "d": d_opt}, "hparams": state["hparams"]}
    metrics = {"loss": d_loss + g_loss, "d_loss": d_loss, "g_loss": g_loss,
               "d_real": d_real, "d_fake": d_fake}
    return new_state, metrics

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
    return nets.generate(state["params"]["g"], state["batch_stats"]["g"], z, train=False)

  return base.Method(init, train_step, score, generate=generate)
