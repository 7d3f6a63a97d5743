"""EGBAD (Zenati et al. 2018): a BiGAN trained on normal data, scored through its encoder.

Three nets: the generator G(z) (DCGAN decoder), the encoder E(x) (DCGAN
encoder to nz) and the joint discriminator D(x, z) of `models.bigan`; tabular
vectors use MLPs for G and E (`g_widths`, `e_widths`; linear output) and dense
layers for D's x branch (`d_widths`). z ~ N(0, I) of size `config.model.nz`.

One `train_step` is one D step, then one joint G and E step against the
updated D, on the same batch and z, with the standard BiGAN losses
(non-saturating for G and E, as EGBAD's code):
    D: BCE(D(x, E(x)), 1) + BCE(D(G(z), z), 0)
    G: BCE(D(G(z), z), 1)        E: BCE(D(x, E(x)), 0)
G, E and D have separate Adam states (`config.optim`). After each step an
exponential moving average of the parameters (`ema_decay`, 0.999 as EGBAD) is
updated with decay min(ema_decay, (1 + t) / (10 + t)) at step t (the rule of
TF's `ExponentialMovingAverage(num_updates=t)`: with a constant 0.999 a run of
a few hundred steps would score with nearly initial weights); `score` uses the
EMA parameters (with the live BatchNorm statistics, as EGBAD's TF code, which
averages trainable variables only), in eval mode.

Score (EGBAD's 'fm' variant, degree 1), with w = `feature_weight` (0.1):
    score = (1 - w) * sum |x - G(E(x))| + w * sum |f(x, E(x)) - f(G(E(x)), E(x))|,
f = D's `feature_layer` ('penultimate', the joint layer). Outputs: "score",
"score_recon" and "score_feature" (the two unweighted sums), "recon" G(E(x))
and, for images, "map" (|x - G(E(x))| averaged over channels).

With `search_steps` > 0, `score` also runs the AnoGAN latent search
(`config.anogan.search` with `steps` = search_steps and init 'encoder': z
starts at E(x)) on the EMA nets and returns its loss as "score_search". Its
feature map is f(x) = D(x, E(x))'s `anogan.search.feature_layer`, a function of
x alone.

`feature_weight` and `ema_decay` live in `state["hparams"]` (vmappable).
"""

import jax
import jax.numpy as jnp
import ml_collections

from ganad_jax import latent_search
from ganad_jax import losses
from ganad_jax.methods import base
from ganad_jax.models import autoencoder
from ganad_jax.models import bigan
from ganad_jax.xla_cpu import fast_conv


def _apply(module, params, batch_stats, *args, train: bool):
  """module(*args) -> (output, batch stats, updated in train mode)."""
  variables = {"params": params, "batch_stats": batch_stats}
  if train:
    out, updates = module.apply(variables, *args, train=True, mutable=["batch_stats"])
    return out, updates.get("batch_stats", batch_stats)
  return module.apply(variables, *args, train=False), batch_stats


class Networks:
  """G, E and D for one input shape, and how to call them."""

  def __init__(self, config, input_shape: tuple[int, ...]):
    dtype = jnp.dtype(config.compute_dtype)
    nz, base_features = int(config.model.nz), int(config.model.base_features)
    self.is_image = len(input_shape) == 3
    if self.is_image:
      if input_shape[0] != input_shape[1]:
        raise ValueError(f"EGBAD's DCGAN nets need square images; got {input_shape}.")
    elif len(input_shape) != 1:
      raise ValueError(f"EGBAD takes images (H, W, C) or vectors (F,); got {input_shape}.")
    self.generator = autoencoder.decoder(input_shape, base_features, config.egbad.g_widths,
                                         dtype)
    self.encoder = autoencoder.encoder(input_shape, nz, base_features, config.egbad.e_widths,
                                       dtype)
    self.discriminator = bigan.JointDiscriminator(
        base_features, tuple(config.egbad.d_widths), int(config.egbad.d_z_features),
        int(config.egbad.d_joint_features), dtype)

  def generate(self, params, batch_stats, z, train: bool):
    """(G(z), batch stats)."""
    out, stats = _apply(self.generator, params, batch_stats, z, train=train)
    return (out[0] if isinstance(out, tuple) else out), stats  # The MLP returns (out, features).

  def encode(self, params, batch_stats, x, train: bool):
    """(E(x), batch stats)."""
    (z, _), stats = _apply(self.encoder, params, batch_stats, x, train=train)
    return z, stats

  def discriminate(self, params, batch_stats, x, z, train: bool):
    """(logits (N,), features dict, batch stats)."""
    (logit, feats), stats = _apply(self.discriminator, params, batch_stats, x, z, train=train)
    return logit, feats, stats


def _layer(feats, name: str, field: str):
  if name not in feats:
    raise ValueError(f"Unknown discriminator layer {name!r} ({field}); "
                     f"known: {', '.join(sorted(feats))}.")
  return feats[name]


def _sum_abs(a):
  return jnp.abs(a).reshape(a.shape[0], -1).sum(axis=1)


def feature_nets(config, input_shape: tuple[int, ...]):
  """Eval-mode feature extractors of a trained EGBAD state, for the Gaussian scorer.

  Returns {"encoder": ..., "discriminator": ...}, each a pair
  (select(state) -> variables, apply(variables, x) -> (output, features dict)).
  The discriminator sees the real pair (x, E(x)). EMA parameters, as `score`.
  """
  nets = Networks(config, tuple(input_shape))

  def select_encoder(state):
    return {"params": state["ema"]["e"], "batch_stats": state["batch_stats"]["e"]}

  def apply_encoder(variables, x):
    return _apply(nets.encoder, variables["params"], variables["batch_stats"], x, train=False)[0]

  def select_both(state):
    return {"e": select_encoder(state),
            "d": {"params": state["ema"]["d"], "batch_stats": state["batch_stats"]["d"]}}

  def apply_discriminator(variables, x):
    z, _ = apply_encoder(variables["e"], x)
    d = variables["d"]
    logit, feats, _ = nets.discriminate(d["params"], d["batch_stats"], x, z, train=False)
    return logit, feats

  return {"encoder": (select_encoder, apply_encoder),
          "discriminator": (select_both, apply_discriminator)}


def search_fns(nets: Networks, state, feature_layer: str):
  """Eval-mode EMA closures (generate_fn, feature_fn, z_init_fn) for `latent_search.search`.

  feature_fn(x) is D(x, E(x))'s `feature_layer`. Call it outside the search:
  for conv nets it precomputes the kernels of `fast_conv.apply_fast`.
  """
  params, stats = state["ema"], state["batch_stats"]
  g_vars = {"params": params["g"], "batch_stats": stats["g"]}
  e_vars = {"params": params["e"], "batch_stats": stats["e"]}
  d_vars = {"params": params["d"], "batch_stats": stats["d"]}

  if nets.is_image:
    kernels = {k: fast_conv.backward_kernels(params[k]) for k in ("g", "e", "d")}

    def generate_fn(z):
      return fast_conv.apply_fast(nets.generator, g_vars, kernels["g"], z, train=False)

    def encode(x):
      return fast_conv.apply_fast(nets.encoder, e_vars, kernels["e"], x, train=False)[0]

    def features(x):
      return fast_conv.apply_fast(nets.discriminator, d_vars, kernels["d"], x, encode(x),
                                  train=False)[1]
  else:
    def generate_fn(z):
      return nets.generate(params["g"], stats["g"], z, train=False)[0]

    def encode(x):
      return nets.encode(params["e"], stats["e"], x, train=False)[0]

    def features(x):
      return nets.discriminate(params["d"], stats["d"], x, encode(x), train=False)[1]

  def feature_fn(x):
    return _layer(features(x), feature_layer, "anogan.search.feature_layer")

  return generate_fn, feature_fn, encode


def make(config, input_shape: tuple[int, ...]) -> base.Method:
  """Builds EGBAD for inputs of shape `input_shape` (no batch axis)."""
  cfg = config.egbad
  if not 0.0 <= cfg.feature_weight <= 1.0:
    raise ValueError(f"egbad.feature_weight must lie in [0, 1]; got {cfg.feature_weight}.")
  if not 0.0 <= cfg.ema_decay < 1.0:
    raise ValueError(f"egbad.ema_decay must lie in [0, 1); got {cfg.ema_decay}.")
  if cfg.search_steps < 0:
    raise ValueError(f"egbad.search_steps must be >= 0 (0 = off); got {cfg.search_steps}.")
  search_config = None
  if cfg.search_steps > 0:
    search_config = ml_collections.ConfigDict(config.anogan.search.to_dict())
    search_config.steps = int(cfg.search_steps)
    search_config.init = "encoder"
    latent_search.validate(search_config)
  nets = Networks(config, tuple(input_shape))
  nz = int(config.model.nz)
  tx = base.adam(config.optim)
  feature_layer = cfg.feature_layer

  def init(key, batch):
    g_key, e_key, d_key = jax.random.split(key, 3)
    z = jnp.zeros((batch.shape[0], nz), jnp.float32)
    variables = {"g": nets.generator.init(g_key, z, train=False),
                 "e": nets.encoder.init(e_key, batch, train=False),
                 "d": nets.discriminator.init(d_key, batch, z, train=False)}
    params = {k: v["params"] for k, v in variables.items()}
    return {"step": jnp.zeros((), jnp.int32), "params": params,
            "batch_stats": {k: v.get("batch_stats", {}) for k, v in variables.items()},
            "opt_state": {k: tx.init(p) for k, p in params.items()},
            "ema": jax.tree_util.tree_map(jnp.copy, params),
            "hparams": {"feature_weight": jnp.asarray(cfg.feature_weight, jnp.float32),
                        "ema_decay": jnp.asarray(cfg.ema_decay, jnp.float32)}}

  def train_step(state, batch, key):
    params, stats = state["params"], state["batch_stats"]
    z = jax.random.normal(key, (batch.shape[0], nz), jnp.float32)
    # Inputs of the D step; the G / E step below recomputes them with gradients,
    # and its train-mode passes are the ones whose BatchNorm statistics are kept.
    fake, _ = nets.generate(params["g"], stats["g"], z, train=True)
    z_hat, _ = nets.encode(params["e"], stats["e"], batch, train=True)
    fake, z_hat = jax.lax.stop_gradient(fake), jax.lax.stop_gradient(z_hat)

    def d_loss_fn(d_params):
      real_logit, _, d_stats = nets.discriminate(d_params, stats["d"], batch, z_hat, True)
      fake_logit, _, d_stats = nets.discriminate(d_params, d_stats, fake, z, True)
      loss = losses.bce_with_logits(real_logit, 1.0) + losses.bce_with_logits(fake_logit, 0.0)
      return loss, (d_stats, jax.nn.sigmoid(real_logit).mean(),
                    jax.nn.sigmoid(fake_logit).mean())

    (d_loss, (d_stats, d_real, d_fake)), d_grads = jax.value_and_grad(
        d_loss_fn, has_aux=True)(params["d"])
    d_params, d_opt = base.adam_update(tx, d_grads, state["opt_state"]["d"], params["d"])

    def ge_loss_fn(ge_params):
      fake, g_stats = nets.generate(ge_params["g"], stats["g"], z, train=True)
      z_hat, e_stats = nets.encode(ge_params["e"], stats["e"], batch, train=True)
      fake_logit, _, new_d_stats = nets.discriminate(d_params, d_stats, fake, z, True)
      real_logit, _, new_d_stats = nets.discriminate(d_params, new_d_stats, batch, z_hat, True)
      # Each loss depends on one net only, so the gradient of the sum is each net's own.
      g_loss = losses.bce_with_logits(fake_logit, 1.0)  # Non-saturating.
      e_loss = losses.bce_with_logits(real_logit, 0.0)
      return g_loss + e_loss, (g_loss, e_loss, g_stats, e_stats, new_d_stats)

    ge_params = {"g": params["g"], "e": params["e"]}
    (_, (g_loss, e_loss, g_stats, e_stats, d_stats)), ge_grads = jax.value_and_grad(
        ge_loss_fn, has_aux=True)(ge_params)
    new_params, new_opt = {"d": d_params}, {"d": d_opt}
    for k in ("g", "e"):
      new_params[k], new_opt[k] = base.adam_update(tx, ge_grads[k], state["opt_state"][k],
                                                   params[k])

    # TF's ExponentialMovingAverage with num_updates: min(decay, (1 + t) / (10 + t)),
    # so that a short run's average is not dominated by the initial weights.
    t = state["step"].astype(jnp.float32)
    decay = jnp.minimum(state["hparams"]["ema_decay"], (1.0 + t) / (10.0 + t))
    ema = jax.tree_util.tree_map(lambda e, p: decay * e + (1.0 - decay) * p,
                                 state["ema"], new_params)
    new_state = {"step": state["step"] + 1, "params": new_params,
                 "batch_stats": {"g": g_stats, "e": e_stats, "d": d_stats},
                 "opt_state": new_opt, "ema": ema, "hparams": state["hparams"]}
    metrics = {"loss": d_loss + g_loss + e_loss, "d_loss": d_loss, "g_loss": g_loss,
               "e_loss": e_loss, "d_real": d_real, "d_fake": d_fake}
    return new_state, metrics

  def score(state, batch, key):
    params, stats = state["ema"], state["batch_stats"]
    x = batch.astype(jnp.float32)
    z, _ = nets.encode(params["e"], stats["e"], x, train=False)
    recon, _ = nets.generate(params["g"], stats["g"], z, train=False)
    _, real_feats, _ = nets.discriminate(params["d"], stats["d"], x, z, train=False)
    _, fake_feats, _ = nets.discriminate(params["d"], stats["d"], recon, z, train=False)
    field = "egbad.feature_layer"
    residual = jnp.abs(x - recon)
    score_recon = _sum_abs(residual)
    score_feature = _sum_abs(_layer(real_feats, feature_layer, field)
                             - _layer(fake_feats, feature_layer, field))
    w = state["hparams"]["feature_weight"]
    outputs = {"score": (1.0 - w) * score_recon + w * score_feature,
               "score_recon": score_recon, "score_feature": score_feature, "recon": recon}
    if nets.is_image:
      outputs["map"] = residual.mean(axis=-1)
    if search_config is not None:
      generate_fn, feature_fn, z_init_fn = search_fns(nets, state, search_config.feature_layer)
      result = latent_search.search(generate_fn, feature_fn, x, key, search_config, nz,
                                    z_init_fn)
      outputs["score_search"] = result.score
    return outputs

  def generate(state, z):  # With the EMA weights, as `score`.
    return nets.generate(state["ema"]["g"], state["batch_stats"]["g"], z, train=False)[0]

  return base.Method(init, train_step, score, generate=generate)
