"""EGBAD (Zenati et al. 2018): a BiGAN trained on normal data, scored through its encoder.

Three nets: the generator G(z), the encoder E(x) to nz and the joint
discriminator D(x, z) of `models.bigan`. `egbad.nets` 'dcgan': a DCGAN decoder
and encoder, and a DCGAN conv stack as D's x branch; tabular vectors use MLPs
for G and E (`g_widths`, `e_widths`; linear output) and dense layers for D's x
branch (`d_widths`). 'zenati': EGBAD's own MNIST G, E and D x branch (images
only). D's LeakyReLU slope is `d_negative_slope`; `d_dropout` > 0 adds
EGBAD's dropout after every hidden layer of D, with fresh masks (from the step
key) for each of its four train-mode passes. z ~ N(0, I) of size
`config.model.nz`.

One `train_step` is one D step (`gan.d_step`), then one joint G and E step
against the updated D, on the same batch and z, with the standard BiGAN losses
(non-saturating for G and E, as EGBAD's code):
    D: BCE(D(x, E(x)), 1) + BCE(D(G(z), z), 0)
    G: BCE(D(G(z), z), 1)        E: BCE(D(x, E(x)), 0)
G, E and D have separate Adam states (`config.optim`). After each step an
exponential moving average of the parameters (`ema_decay`, 0.999 as EGBAD) is
updated with decay min(ema_decay, (1 + t) / (10 + t)) at step t (the rule of
TF's `ExponentialMovingAverage(num_updates=t)`: with a constant 0.999 a run of
a few hundred steps would score with nearly initial weights), or, with
`ema_warmup` False, the constant `ema_decay` (EGBAD's code); `score` uses the
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

Feature nets (`base.FeatureNet`, EMA params): "encoder", E(x) -> (z,
features), and "discriminator", D(x, E(x)) -> (logit, features).
"""

import functools

import jax
import jax.numpy as jnp

from ganad_jax import latent_search
from ganad_jax import losses
from ganad_jax.configs.methods import egbad as egbad_config
from ganad_jax.methods import base
from ganad_jax.methods import gan
from ganad_jax.models import autoencoder
from ganad_jax.models import bigan


NETS = ("dcgan", "zenati")


class Networks(gan.Nets):
  """EGBAD's G, E and joint D(x, z) for one input shape (`config.egbad.nets`)."""

  def __init__(self, config, input_shape: tuple[int, ...]):
    cfg = config.egbad
    dtype = jnp.dtype(config.compute_dtype)
    nz, base_features = int(config.model.nz), int(config.model.base_features)
    is_image = base.check_input_shape(tuple(input_shape), "EGBAD")
    if cfg.nets not in NETS:
      raise ValueError(f"Unknown egbad.nets {cfg.nets!r}; known: {NETS}.")
    if cfg.nets == "zenati":
      if not is_image:
        raise ValueError(f"egbad.nets 'zenati' (EGBAD's MNIST nets) takes images; got input "
                         f"shape {tuple(input_shape)}. Use egbad.nets 'dcgan' for vectors.")
      size, _, channels = input_shape
      generator = bigan.ZenatiGenerator(size, channels, dtype)
      encoder = bigan.ZenatiEncoder(nz, dtype)
    else:
      generator = autoencoder.decoder(input_shape, base_features, cfg.g_widths, dtype)
      encoder = autoencoder.encoder(input_shape, nz, base_features, cfg.e_widths, dtype)
    super().__init__(
        generator=generator,
        discriminator=bigan.JointDiscriminator(
            base_features, tuple(cfg.d_widths), int(cfg.d_z_features),
            int(cfg.d_joint_features), x_branch=cfg.nets,
            negative_slope=float(cfg.d_negative_slope), dropout_rate=float(cfg.d_dropout),
            dtype=dtype),
        is_image=is_image, encoder=encoder)

  def discriminate(self, params, batch_stats, x, z, key=None, *, train: bool):
    """(logits (N,), features dict, batch stats) of D(x, z); `key` draws D's dropout masks.

    `key` is needed in train mode when `egbad.d_dropout` > 0 (Flax raises
    otherwise); eval mode has no dropout.
    """
    variables = {"params": params, "batch_stats": batch_stats}
    if not train:
      logits, features = self.discriminator.apply(variables, x, z, train=False)
      return logits.reshape(-1), features, batch_stats
    rngs = None if key is None else {"dropout": key}
    (logits, features), updates = self.discriminator.apply(
        variables, x, z, train=True, mutable=["batch_stats"], rngs=rngs)
    return logits.reshape(-1), features, updates.get("batch_stats", batch_stats)


def _sum_abs(a):
  return jnp.abs(a).reshape(a.shape[0], -1).sum(axis=1)


def search_fns(nets: Networks, state, feature_layer: str):
  """Eval-mode EMA closures (generate_fn, feature_fn, z_init_fn) for `latent_search.search`.

  feature_fn(x) is D(x, E(x))'s `feature_layer`; z_init_fn is E (`gan.search_fns`).
  """
  return gan.search_fns(nets, state["ema"], state["batch_stats"], feature_layer,
                        "anogan.search.feature_layer")


def feature_nets(nets: Networks) -> dict[str, base.FeatureNet]:
  """EGBAD's "encoder" E(x) and "discriminator" D(x, E(x)), with the EMA params as `score`."""

  def select_encoder(state):
    return {"params": state["ema"]["e"], "batch_stats": state["batch_stats"]["e"]}

  def apply_encoder(variables, x):
    return base.apply(nets.encoder, variables["params"], variables["batch_stats"], x,
                      train=False)[0]

  def select_both(state):
    return {"e": select_encoder(state),
            "d": {"params": state["ema"]["d"], "batch_stats": state["batch_stats"]["d"]}}

  def apply_discriminator(variables, x):
    z, _ = apply_encoder(variables["e"], x)
    d = variables["d"]
    logit, feats, _ = nets.discriminate(d["params"], d["batch_stats"], x, z, train=False)
    return logit, feats

  return {"encoder": base.FeatureNet(select_encoder, apply_encoder),
          "discriminator": base.FeatureNet(select_both, apply_discriminator)}


def make(config, input_shape: tuple[int, ...]) -> base.Method:
  """Builds EGBAD for inputs of shape `input_shape` (no batch axis)."""
  egbad_config.check(config)  # The checks that need no input shape.
  cfg = config.egbad
  search_config = egbad_config.encoder_search(config) if cfg.search_steps > 0 else None
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
    state = gan.init_state(variables, tx, base.hparams(cfg, ("feature_weight", "ema_decay")))
    return {**state, "ema": jax.tree_util.tree_map(jnp.copy, state["params"])}

  def train_step(state, batch, key):
    params, stats = state["params"], state["batch_stats"]
    z = jax.random.normal(key, (batch.shape[0], nz), jnp.float32)
    # D's dropout masks: a fresh draw for each of its four train-mode passes.
    d_keys = [jax.random.fold_in(key, i) for i in range(1, 5)]
    # Inputs of the D step; the G / E step below recomputes them with gradients,
    # and its train-mode passes are the ones whose BatchNorm statistics are kept.
    fake, _ = nets.generate(params["g"], stats["g"], z, train=True)
    z_hat, _ = nets.encode(params["e"], stats["e"], batch, train=True)
    fake, z_hat = jax.lax.stop_gradient(fake), jax.lax.stop_gradient(z_hat)
    d_params, d_opt, d_stats, d_metrics, _ = gan.d_step(
        functools.partial(nets.discriminate, train=True), tx, params["d"], stats["d"],
        state["opt_state"]["d"], (batch, z_hat, d_keys[0]), (fake, z, d_keys[1]))

    def ge_loss_fn(ge_params):
      fake, g_stats = nets.generate(ge_params["g"], stats["g"], z, train=True)
      z_hat, e_stats = nets.encode(ge_params["e"], stats["e"], batch, train=True)
      fake_logit, _, new_d_stats = nets.discriminate(d_params, d_stats, fake, z, d_keys[2],
                                                     train=True)
      real_logit, _, new_d_stats = nets.discriminate(d_params, new_d_stats, batch, z_hat,
                                                     d_keys[3], train=True)
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

    decay = state["hparams"]["ema_decay"]
    if cfg.ema_warmup:
      # TF's ExponentialMovingAverage with num_updates: min(decay, (1 + t) / (10 + t)),
      # so that a short run's average is not dominated by the initial weights.
      t = state["step"].astype(jnp.float32)
      decay = jnp.minimum(decay, (1.0 + t) / (10.0 + t))
    ema = jax.tree_util.tree_map(lambda e, p: decay * e + (1.0 - decay) * p,
                                 state["ema"], new_params)
    new_state = base.next_state(state, params=new_params, opt_state=new_opt, ema=ema,
                                batch_stats={"g": g_stats, "e": e_stats, "d": d_stats})
    metrics = {"loss": d_metrics["d_loss"] + g_loss + e_loss, "d_loss": d_metrics["d_loss"],
               "g_loss": g_loss, "e_loss": e_loss, "d_real": d_metrics["d_real"],
               "d_fake": d_metrics["d_fake"]}
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
    score_feature = _sum_abs(gan.layer(real_feats, feature_layer, field)
                             - gan.layer(fake_feats, feature_layer, field))
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

  return base.Method(init, train_step, score, generate=generate, features=feature_nets(nets))
