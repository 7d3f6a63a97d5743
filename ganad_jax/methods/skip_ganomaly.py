"""Skip-GANomaly (Akcay et al. 2019): a U-Net generator and a discriminator. Images only.

G is the pix2pix U-Net of `models.unet` (log2(size) down-samplings to 1x1,
skip connections, BatchNorm, no dropout): the reference's netG, layer for
layer. D is `config.model.discriminator`: "dcgan" (GANomaly's DCGAN
discriminator) or "patch" (BCE over all patch logits); f_D is D's
"penultimate" feature map (DCGAN: the 4x4 map before the logit conv). The
reference's D (`BasicDiscriminator`) differs: after the same conv stack it has
a k4 conv to nz channels at 1x1, which is its f_D (no activation), and a 3x3
conv from there to the logit (experiments/reference/README.md).

One `train_step` (`gan.reconstruction_gan`) is one G step then one D step, both
on the networks as they were before the step (samet-akcay/skip-ganomaly's order):
    G: w_adv * BCE(D(x_hat), 1) + w_con * mean|x - x_hat|
       + w_lat * mean((f_D(x) - f_D(x_hat))^2)
    D: BCE(D(x), 1) + BCE(D(x_hat), 0)
The reference also adds G's latent term to D's loss (so D learns to shrink
the feature distance; current PyTorch refuses that backward, its issue 16)
and feeds G "noise" from uninitialised memory; neither is in the paper and
neither is done here. With `reinit_d_below` > 0, D's parameters are drawn
afresh (with the step key) when its loss falls below it (reference: 1e-5).

The loss weights and the score's lambda live in `state["hparams"]` (float32
scalars set by `init` from `config.skip_ganomaly`), so that a vmapped grid can
give every member its own.

Scoring is in eval mode: "score" = lambda * rec + (1 - lambda) * feature, with
rec = mean((x - x_hat)^2) (the reference's; `score_rec="l1"` gives the
paper's mean|x - x_hat|) and feature = mean((f_D(x) - f_D(x_hat))^2), raw (no
min-max). Also "score_recon" (rec), "score_feature" (feature), "recon" and
"map" (the per-pixel rec residual averaged over channels; its mean is rec).
The reference scores with both nets in train mode (`paper_score`, for the
labelled paper_repro protocol only).
"""

import jax
import jax.numpy as jnp

from ganad_jax import losses
from ganad_jax.methods import base
from ganad_jax.methods import gan
from ganad_jax.models import unet

SCORE_RECS = ("l2", "l1")


HPARAMS = ("w_adv", "w_con", "w_lat", "score_lambda")


def g_terms(x, x_hat, fake_logits, real_feat, fake_feat) -> dict[str, jax.Array]:
  """Skip-GANomaly's G loss terms (module docstring), weighted by `gan.reconstruction_gan`."""
  return {"adv": losses.bce_with_logits(fake_logits, 1.0),  # Non-saturating.
          "con": jnp.mean(jnp.abs(x - x_hat)),
          "lat": jnp.mean(jnp.square(real_feat - fake_feat))}


def make(config, input_shape: tuple[int, ...]) -> base.Method:
  """Builds Skip-GANomaly for images of shape (H, W, C)."""
  input_shape = tuple(input_shape)
  base.check_input_shape(input_shape, "skip_ganomaly",
                         images_only="use 'ganomaly' for tabular vectors")
  section = config.skip_ganomaly
  base.check_weights(section, "config.skip_ganomaly", ("w_adv", "w_con", "w_lat", "reinit_d_below"))
  if not 0.0 <= float(section.score_lambda) <= 1.0:
    raise ValueError(f"config.skip_ganomaly.score_lambda={section.score_lambda!r} must be in "
                     "[0, 1].")
  if section.score_rec not in SCORE_RECS:
    raise ValueError(f"config.skip_ganomaly.score_rec={section.score_rec!r}; choose one of "
                     f"{', '.join(SCORE_RECS)}.")
  dtype = jnp.dtype(config.compute_dtype)
  unet.num_levels(input_shape[0])  # Fail at build time on a bad size.
  generator = unet.UNet(input_shape[2], int(config.model.base_features), dtype)
  discriminator = gan.image_discriminator(config, dtype)
  residual_fn = jnp.square if section.score_rec == "l2" else jnp.abs
  init, train_step = gan.reconstruction_gan(
      generator, discriminator, base.adam(config.optim), section, HPARAMS, lambda x_hat: x_hat,
      g_terms, d_scale=1.0, reinit_below=float(section.reinit_d_below))

  def make_score(train_bn: bool):
    def score(state, batch, key):
      del key  # Deterministic.
      # train_bn: the updated statistics are dropped; the state is not changed.
      params, stats = state["params"], state["batch_stats"]
      x_hat, _ = base.apply(generator, params["g"], stats["g"], batch, train=train_bn)
      _, real_feat, _ = gan.discriminate_fd(discriminator, params["d"], stats["d"], batch,
                                            train_bn)
      _, fake_feat, _ = gan.discriminate_fd(discriminator, params["d"], stats["d"], x_hat,
                                            train_bn)
      rec_map = residual_fn(batch - x_hat).mean(axis=-1)
      rec = losses.per_sample_mean(rec_map)
      feature = losses.per_sample_mean(jnp.square(real_feat - fake_feat))
      lam = state["hparams"]["score_lambda"]
      return {"score": lam * rec + (1.0 - lam) * feature, "score_recon": rec,
              "score_feature": feature, "recon": x_hat, "map": rec_map}
    return score

  # The reference's test() leaves netg and netd in train mode, on a test
  # loader that is not shuffled: normals first, then the anomalies.
  return base.Method(init, train_step, make_score(False),
                     paper_score=base.PaperScore(make_score(True), "sorted"))
