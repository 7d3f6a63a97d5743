"""Variational autoencoder baseline (Kingma & Welling 2014) with a fixed-variance Gaussian decoder.

Images go through the DCGAN encoder (to 2 * nz: posterior mean and log
variance) and decoder (the mean of p(x|z), tanh, in [-1, 1]); tabular vectors
through MLPs (`config.model.mlp_widths`, linear output). The decoder's variance
is fixed to sigma^2 (`sigma`), so with D input dimensions

    -log p(x|z) = sum (x - mean(z))^2 / (2 sigma^2) + D/2 log(2 pi sigma^2),

and training minimises, per sample and averaged over the batch,

    loss = sum (x - mean(z))^2 / (2 sigma^2) + beta * KL(q(z|x) || N(0, I)),

one reparameterised z per sample (the constant dropped).

Scores (eval mode, BatchNorm with running statistics):
  "score": reconstruction error of the decoded posterior mean, mean over
    pixels / features of (x - mean(mu(x)))^2 (deterministic; as AE-L2's score);
  "score_elbo": the negative ELBO (beta = 1, the bound itself) without the
    constant D/2 log(2 pi sigma^2), so >= 0: the mean over `num_score_samples`
    draws z ~ q(z|x) of the reconstruction term, plus the closed-form KL. Each
    sample's draws come from `fold_in(key, content_hash(x_i))`, so a score does
    not depend on the rest of the batch.
  "map": the per-pixel squared residual of "score" (images), "recon": mean(mu(x)).

`beta` and `sigma` live in `state["hparams"]` (vmappable). Feature net
(`base.FeatureNet`): "encoder", x -> (mu, encoder features).
"""

import jax
import jax.numpy as jnp

from ganad_jax import latent_search
from ganad_jax import losses
from ganad_jax.methods import base
from ganad_jax.models import autoencoder

# Bounds of the posterior log variance: keeps exp() finite early in training.
_LOGVAR_RANGE = (-20.0, 20.0)


class VAE(autoencoder.EncoderDecoder):
  """Encoder x -> (mu, logvar) and decoder z -> mean of p(x|z)."""

  def setup(self):
    self.encoder = self.make_encoder(2 * self.nz)  # The posterior mean and log variance.
    self.decoder = self.make_decoder()

  def encode(self, x, train: bool = True):
    """(mu, logvar, encoder features)."""
    h, feats = self.encoder(x, train)
    mu, logvar = jnp.split(h, 2, axis=-1)
    return mu, jnp.clip(logvar, *_LOGVAR_RANGE), feats

  def decode(self, z, train: bool = True):
    return self.decoder(z, train)

  def __call__(self, x, eps, train: bool = True):
    mu, logvar, _ = self.encode(x, train)
    return self.decode(mu + jnp.exp(0.5 * logvar) * eps, train), mu, logvar


def kl_divergence(mu, logvar):
  """KL(N(mu, exp(logvar)) || N(0, I)) per sample: (N, nz) -> (N,)."""
  return 0.5 * jnp.sum(jnp.square(mu) + jnp.exp(logvar) - 1.0 - logvar, axis=-1)


def _sse(x, y):
  return jnp.square(x - y).reshape(x.shape[0], -1).sum(axis=1)


def make(config, input_shape: tuple[int, ...]) -> base.Method:
  """Builds the VAE for inputs of shape `input_shape` (no batch axis)."""
  cfg = config.vae
  if cfg.sigma <= 0.0:
    raise ValueError(f"vae.sigma must be > 0; got {cfg.sigma}.")
  if cfg.beta < 0.0:
    raise ValueError(f"vae.beta must be >= 0; got {cfg.beta}.")
  if cfg.num_score_samples < 1:
    raise ValueError(f"vae.num_score_samples must be >= 1; got {cfg.num_score_samples}.")
  is_image = base.check_input_shape(tuple(input_shape), "The VAE")
  net = VAE(tuple(input_shape), int(config.model.nz), int(config.model.base_features),
            tuple(config.model.mlp_widths), jnp.dtype(config.compute_dtype))
  nz, num_samples = int(config.model.nz), int(cfg.num_score_samples)
  tx = base.adam(config.optim)

  def init(key, batch):
    eps = jnp.zeros((batch.shape[0], nz), jnp.float32)
    variables = net.init(key, batch, eps, train=False)
    params = variables["params"]
    return {"step": jnp.zeros((), jnp.int32), "params": params,
            "batch_stats": variables.get("batch_stats", {}),
            "opt_state": tx.init(params),
            "hparams": base.hparams(cfg, ("beta", "sigma"))}

  def train_step(state, batch, key):
    hp = state["hparams"]
    eps = jax.random.normal(key, (batch.shape[0], nz), jnp.float32)

    def loss_fn(params):
      (recon, mu, logvar), batch_stats = base.apply(net, params, state["batch_stats"], batch,
                                                    eps, train=True)
      rec = _sse(batch, recon) / (2.0 * jnp.square(hp["sigma"]))
      kl = kl_divergence(mu, logvar)
      return jnp.mean(rec + hp["beta"] * kl), (batch_stats, rec.mean(), kl.mean())

    (loss_value, (batch_stats, rec, kl)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state["params"])
    params, opt_state = base.adam_update(tx, grads, state["opt_state"], state["params"])
    new_state = base.next_state(state, params=params, batch_stats=batch_stats,
                                opt_state=opt_state)
    return new_state, {"loss": loss_value, "recon": rec, "kl": kl}

  def score(state, batch, key):
    variables = {"params": state["params"], "batch_stats": state["batch_stats"]}
    x = batch.astype(jnp.float32)
    mu, logvar, _ = net.apply(variables, x, train=False, method=VAE.encode)
    recon = net.apply(variables, mu, train=False, method=VAE.decode)

    # Negative ELBO: per-sample draws keyed by content; one decoder pass per
    # draw (lax.map), so memory stays that of one batch.
    keys = latent_search.sample_keys(key, x)
    eps = jax.vmap(lambda k: jax.random.normal(k, (num_samples, nz), jnp.float32))(keys)
    std = jnp.exp(0.5 * logvar)

    def draw_sse(eps_k):
      return _sse(x, net.apply(variables, mu + std * eps_k, train=False, method=VAE.decode))

    rec = jax.lax.map(draw_sse, jnp.swapaxes(eps, 0, 1)).mean(axis=0)
    nll = rec / (2.0 * jnp.square(state["hparams"]["sigma"]))
    outputs = {"score": losses.per_sample_mean(jnp.square(x - recon)),
               "score_elbo": nll + kl_divergence(mu, logvar), "recon": recon}
    if is_image:
      outputs["map"] = losses.squared_error_map(x, recon)
    return outputs

  def select_encoder(state):
    return {"params": state["params"], "batch_stats": state["batch_stats"]}

  def apply_encoder(variables, x):
    mu, _, feats = net.apply(variables, x, train=False, method=VAE.encode)
    return mu, feats

  return base.Method(init, train_step, score,
                     features={"encoder": base.FeatureNet(select_encoder, apply_encoder)})
