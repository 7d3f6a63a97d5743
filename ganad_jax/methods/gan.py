"""What the GAN methods share: the discriminator's loss and step, and their nets' wiring.

- `d_loss`, `d_step`: D's BCE(D(real), 1) + BCE(D(fake), 0) and one Adam step
  of it, for every GAN here (AnoGAN, EGBAD, GANomaly, Skip-GANomaly); D is
  whatever `discriminate` function the method passes (one image, or EGBAD's
  (x, z) pair).
- `Nets`: a generator, a discriminator and an optional encoder, each called
  through `base.apply` (AnoGAN, EGBAD); `search_fns` turns their eval-mode
  calls into the closures of `latent_search.search`, with the encoder as the
  warm start when there is one.
- `reconstruction_gan`: `init` and `train_step` of a generator that
  reconstructs x against a discriminator with a feature layer (GANomaly,
  Skip-GANomaly): the two methods pass only their generator and G loss.
- `init_state`: the state pytree of a set of nets with one Adam each;
  `image_discriminator` (the configured image D), `layer` (a named D layer,
  or an error naming the config field).
"""

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from ganad_jax import losses
from ganad_jax.methods import base
from ganad_jax.models import patch
from ganad_jax.xla_cpu import fast_conv

FEATURE_LAYER = "penultimate"  # The references' f_D: D without its last conv.

# discriminate(params, batch_stats, *inputs) -> (logits, features, batch stats), train mode.
DiscriminateFn = Callable[..., tuple[jax.Array, Any, Any]]


def image_discriminator(config: ml_collections.ConfigDict, dtype) -> nn.Module:
  """The image D named by `config.model.discriminator` (`patch.make_discriminator`)."""
  return patch.make_discriminator(config.model.discriminator, config.model.base_features,
                                  config.model.patch_layers, dtype)


def init_state(variables: dict[str, Any], tx, hparams: dict[str, jax.Array]) -> base.State:
  """{"step", "params", "batch_stats", "opt_state", "hparams"} of nets {name: flax variables}.

  Each net gets its own `tx` state; a net without BatchNorm has batch stats {}.
  """
  params = {k: v["params"] for k, v in variables.items()}
  return {"step": jnp.zeros((), jnp.int32), "params": params,
          "batch_stats": {k: v.get("batch_stats", {}) for k, v in variables.items()},
          "opt_state": {k: tx.init(p) for k, p in params.items()},
          "hparams": hparams}


# --- The discriminator's loss and step. ----------------------------------------


def d_loss(real_logits: jax.Array, fake_logits: jax.Array, scale: float = 1.0) -> jax.Array:
  """scale * (BCE(real_logits, 1) + BCE(fake_logits, 0)), each BCE a mean over its logits.

  GANomaly's reference averages the two terms (scale 0.5); the others sum them.
  """
  loss = losses.bce_with_logits(real_logits, 1.0) + losses.bce_with_logits(fake_logits, 0.0)
  return loss if scale == 1.0 else scale * loss


def d_step(discriminate: DiscriminateFn, tx, params, batch_stats, opt_state, real: tuple,
           fake: tuple, scale: float = 1.0):
  """One Adam step of D on `d_loss`: D sees the real inputs, then the fake ones.

  Args:
    discriminate: D in train mode, (params, batch_stats, *inputs) -> (logits,
      features, batch stats); the logits go into the BCE means as they are.
    tx, params, batch_stats, opt_state: D's optimiser, parameters, BatchNorm
      statistics and optimiser state.
    real, fake: D's inputs (tuples: one image batch, or EGBAD's (x, z));
      callers stop the gradients into the nets that made them.
    scale: see `d_loss`.

  Returns:
    (params, opt_state, batch_stats, metrics, real features): metrics "d_loss",
    "d_real" and "d_fake" (mean D(real) and D(fake) over all logits); the
    features of D's pass on `real` (before this step's update).
  """
  def loss_fn(p):
    real_logits, real_features, stats = discriminate(p, batch_stats, *real)
    fake_logits, _, stats = discriminate(p, stats, *fake)
    return d_loss(real_logits, fake_logits, scale), (
        stats, jax.nn.sigmoid(real_logits).mean(), jax.nn.sigmoid(fake_logits).mean(),
        real_features)

  (loss, (batch_stats, d_real, d_fake, real_features)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(params)
  params, opt_state = base.adam_update(tx, grads, opt_state, params)
  metrics = {"d_loss": loss, "d_real": d_real, "d_fake": d_fake}
  return params, opt_state, batch_stats, metrics, real_features


def maybe_reinit(d_params, loss: jax.Array, threshold: float, init_fn, key):
  """(params, reinitialised as float32): `init_fn(key)` where `loss < threshold`.

  `lax.cond` skips the init when not needed; under vmap it becomes a select,
  so each grid member re-initialises on its own loss.
  """
  reinit = loss < threshold
  params = jax.lax.cond(reinit, lambda: init_fn(key), lambda: d_params)
  return params, reinit.astype(jnp.float32)


# --- Nets with an optional encoder, and the latent search over them. -----------


class Nets:
  """A generator G(z), a discriminator D and optionally an encoder E(x) (BiGAN: D(x, z)).

  Each call takes the net's params and batch stats explicitly (`base.apply`)
  and returns the batch stats it leaves (updated in train mode).

  Attributes:
    generator: z (N, nz) -> x (N, ...).
    discriminator: D(x) or, with an encoder, D(x, z) -> (logits, features dict).
    encoder: x -> (z (N, nz), features dict), or None.
    is_image: inputs are images (N, H, W, C) rather than vectors (N, F).
  """

  def __init__(self, generator: nn.Module, discriminator: nn.Module, is_image: bool,
               encoder: nn.Module | None = None):
    self.generator, self.discriminator, self.encoder = generator, discriminator, encoder
    self.is_image = is_image

  def generate(self, params, batch_stats, z, train: bool):
    """(G(z), batch stats)."""
    return base.apply(self.generator, params, batch_stats, z, train=train)

  def encode(self, params, batch_stats, x, train: bool):
    """(E(x) (N, nz), batch stats)."""
    (z, _), batch_stats = base.apply(self.encoder, params, batch_stats, x, train=train)
    return z, batch_stats

  def discriminate(self, params, batch_stats, *inputs, train: bool):
    """(logits (N * P,), features dict, batch stats); P logits per sample (1 but for PatchGAN)."""
    (logits, features), batch_stats = base.apply(self.discriminator, params, batch_stats,
                                                  *inputs, train=train)
    return logits.reshape(-1), features, batch_stats


def layer(features: dict, name: str, field: str) -> jax.Array:
  """features[name]; a ValueError names `field` (the config field that chose it) and the layers."""
  if name not in features:
    raise ValueError(f"Unknown discriminator layer {name!r} ({field}); "
                     f"known: {', '.join(sorted(features))}.")
  return features[name]


def search_fns(nets: Nets, params, batch_stats, feature_layer: str, field: str):
  """Eval-mode closures (generate_fn, feature_fn, z_init_fn) for `latent_search.search`.

  feature_fn(x) is D(x)'s `feature_layer`, or D(x, E(x))'s with an encoder,
  a function of x alone; z_init_fn is E (the warm start of init 'encoder'),
  None without an encoder. Call it outside the search (as the methods' `score`
  does): for conv nets it precomputes the flipped kernels that keep the
  search's gradients fast inside its loop (`fast_conv.apply_fast`).

  Args:
    nets: the nets; `params` and `batch_stats` hold theirs under "g", "d"
      and, with an encoder, "e".
    feature_layer: a name of D's features dict.
    field: the config field that chose `feature_layer`, for the error message.

  Raises:
    ValueError (when feature_fn is traced): `feature_layer` is not one of D's
    layers; the message names `field` and the known layers.
  """
  names = ("g", "d") if nets.encoder is None else ("g", "e", "d")
  modules = {"g": nets.generator, "e": nets.encoder, "d": nets.discriminator}
  if nets.is_image:
    kernels = {k: fast_conv.backward_kernels(params[k]) for k in names}

    def run(name, *args):
      variables = {"params": params[name], "batch_stats": batch_stats[name]}
      return fast_conv.apply_fast(modules[name], variables, kernels[name], *args, train=False)
  else:
    def run(name, *args):
      return base.apply(modules[name], params[name], batch_stats[name], *args, train=False)[0]

  def generate_fn(z):
    return run("g", z)

  def encode(x):
    return run("e", x)[0]

  def feature_fn(x):
    out = run("d", x) if nets.encoder is None else run("d", x, encode(x))
    return layer(out[1], feature_layer, field)

  return generate_fn, feature_fn, (None if nets.encoder is None else encode)


# --- GANomaly and Skip-GANomaly: a reconstructing G against D. ------------------


def discriminate_fd(module: nn.Module, params, batch_stats, x, train: bool):
  """(logits (N, P), f_D features (N, ...) float32, batch stats); P = 1 for DCGAN and MLP."""
  (logits, features), batch_stats = base.apply(module, params, batch_stats, x, train=train)
  feature = features[FEATURE_LAYER].astype(jnp.float32)  # Losses in float32 under bfloat16.
  return logits.reshape(x.shape[0], -1), feature, batch_stats


def init_discriminator(module: nn.Module, key, batch):
  """Fresh D variables from `key` (the shapes do not depend on the batch size)."""
  return module.init(key, batch[:1], train=False)


def reconstruction_gan(generator: nn.Module, discriminator: nn.Module, tx,
                       section: ml_collections.ConfigDict, hparam_names: tuple[str, ...],
                       reconstruction: Callable[[Any], jax.Array], g_terms: Callable[..., dict],
                       d_scale: float, reinit_below: float):
  """(init, train_step) of GANomaly-like methods: G reconstructs x, D tells x from G(x).

  One `train_step` is one G step then one D step (`d_step` with `d_scale`),
  both on the nets as they were before the step (the references' order).
  D's train-mode pass on x comes first; its f_D features are G's constant
  feature-matching target. With `reinit_below` > 0, D's parameters are drawn
  afresh with the step key when the D loss falls below it (`maybe_reinit`);
  its Adam state and BatchNorm statistics are kept.

  State: params / batch_stats / opt_state under "g" and "d"; "hparams" the
  float32 scalars `hparam_names` of `section` (`base.hparams`).

  Args:
    generator: x -> output (train mode updates its batch stats).
    discriminator: x -> (logits, features dict with "penultimate").
    tx: the Adam of both nets.
    section: the method's config section.
    hparam_names: its fields kept in `state["hparams"]`; among them a weight
      "w_<term>" for every term of `g_terms`.
    reconstruction: the generator's output -> x_hat (N, ...).
    g_terms: (x, generator output, D logits on x_hat (N, P), f_D(x), f_D(x_hat))
      -> {term: scalar}, in order; G's loss is sum hp["w_<term>"] * term and
      the metrics report each as "g_<term>".
    d_scale: see `d_loss`.
    reinit_below: D re-initialisation threshold; 0 disables it (no metric).

  Returns:
    init(key, batch) -> state, train_step(state, batch, key) -> (state, metrics)
    with metrics "loss" (G loss + D loss), "g_loss", the "g_<term>"s and
    `d_step`'s (plus "d_reinit" when enabled).
  """
  def discriminate(params, batch_stats, x):
    return discriminate_fd(discriminator, params, batch_stats, x, True)

  def init(key, batch):
    g_key, d_key = jax.random.split(key)
    variables = {"g": generator.init(g_key, batch, train=False),
                 "d": init_discriminator(discriminator, d_key, batch)}
    return init_state(variables, tx, base.hparams(section, hparam_names))

  def train_step(state, batch, key):
    params, stats, hp = state["params"], state["batch_stats"], state["hparams"]
    # D(x)'s features are the feature-matching target: constant for G.
    _, real_feat, d_stats = discriminate(params["d"], stats["d"], batch)
    real_feat = jax.lax.stop_gradient(real_feat)

    def g_loss_fn(g_params):
      out, g_stats = base.apply(generator, g_params, stats["g"], batch, train=True)
      fake = reconstruction(out)
      logits, fake_feat, new_d_stats = discriminate(params["d"], d_stats, fake)
      terms = g_terms(batch, out, logits, real_feat, fake_feat)
      loss = None
      for name, term in terms.items():
        weighted = hp[f"w_{name}"] * term
        loss = weighted if loss is None else loss + weighted
      return loss, (fake, g_stats, new_d_stats, terms)

    (g_loss, (fake, g_stats, d_stats, terms)), g_grads = jax.value_and_grad(
        g_loss_fn, has_aux=True)(params["g"])
    g_params, g_opt = base.adam_update(tx, g_grads, state["opt_state"]["g"], params["g"])
    d_params, d_opt, d_stats, d_metrics, _ = d_step(
        discriminate, tx, params["d"], d_stats, state["opt_state"]["d"], (batch,),
        (jax.lax.stop_gradient(fake),), d_scale)
    if reinit_below > 0.0:
      d_params, d_metrics["d_reinit"] = maybe_reinit(
          d_params, d_metrics["d_loss"], reinit_below,
          lambda k: init_discriminator(discriminator, k, batch)["params"], key)
    metrics = {"loss": g_loss + d_metrics["d_loss"], "g_loss": g_loss,
               **{f"g_{name}": term for name, term in terms.items()}, **d_metrics}
    return base.next_state(state, params={"g": g_params, "d": d_params},
                           batch_stats={"g": g_stats, "d": d_stats},
                           opt_state={"g": g_opt, "d": d_opt}), metrics

  return init, train_step
