"""GANomaly (Akcay et al. 2018): an encoder-decoder-encoder generator and a discriminator.

Generator G = encoder1 -> decoder -> encoder2: z = E1(x), x_hat = Dec(z),
z_hat = E2(x_hat), two separate encoders. Images go through the DCGAN encoder /
decoder of `models.dcgan`; tabular vectors through MLPs of widths
`config.model.mlp_widths` (decoder reversed, linear output). The
discriminator is `config.model.discriminator` for images ("dcgan", the
reference's, or "patch", `models.patch`; BCE over all patch logits) and an MLP
with one logit for vectors.

One `train_step` (`gan.reconstruction_gan`) is one G step then one D step, as
the reference (samet-akcay/ganomaly), both on the networks as they were before
the step:
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
mode at test, which lets test images influence each other: `paper_score`, for
the labelled paper_repro protocol only). Outputs: "score"
= mean((z - z_hat)^2) over latent dims (the paper's score, raw, no min-max),
"score_recon" = mean|x - x_hat|, "recon" = x_hat and, for images, "map" =
|x - x_hat| averaged over channels (the reference has no map).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from ganad_jax import losses
from ganad_jax.methods import base
from ganad_jax.methods import gan
from ganad_jax.models import autoencoder
from ganad_jax.models import mlp


class Generator(autoencoder.EncoderDecoder):
  """x -> (x_hat, z, z_hat): encoder1 -> decoder -> encoder2 (fields: `EncoderDecoder`)."""

  def setup(self):
    self.encoder1 = self.make_encoder(self.nz)
    self.decoder = self.make_decoder()
    self.encoder2 = self.make_encoder(self.nz)  # Same shape as encoder1, its own parameters.

  def __call__(self, x, train: bool = True):
    z, _ = self.encoder1(x, train)
    x_hat = self.decoder(z, train)
    z_hat, _ = self.encoder2(x_hat, train)
    return x_hat, z, z_hat


def discriminator(config, input_shape: tuple[int, ...]) -> nn.Module:
  """`gan.image_discriminator` for images, an MLP with one logit for vectors (F,)."""
  dtype = jnp.dtype(config.compute_dtype)
  if base.check_input_shape(input_shape, "GANomaly"):
    return gan.image_discriminator(config, dtype)
  if config.model.discriminator != "dcgan":
    raise ValueError(f"config.model.discriminator={config.model.discriminator!r} is for "
                     f"images; vectors of shape {input_shape} use an MLP discriminator "
                     "(leave it 'dcgan').")
  return mlp.MLP(tuple(config.model.mlp_widths), 1, dtype=dtype)


WEIGHTS = ("w_adv", "w_con", "w_enc")


def g_terms(x, g_out, fake_logits, real_feat, fake_feat) -> dict[str, jax.Array]:
  """GANomaly's G loss terms (see the module docstring); `gan.reconstruction_gan` weights them."""
  del fake_logits  # The adversarial term is feature matching.
  x_hat, z, z_hat = g_out
  return {"adv": jnp.mean(jnp.square(real_feat - fake_feat)),
          "con": jnp.mean(jnp.abs(x - x_hat)),
          "enc": jnp.mean(jnp.square(z - z_hat))}


def make(config, input_shape: tuple[int, ...]) -> base.Method:
  """Builds GANomaly for inputs of shape `input_shape` (no batch axis)."""
  input_shape = tuple(input_shape)
  base.check_weights(config.ganomaly, "config.ganomaly", WEIGHTS + ("reinit_d_below",))
  is_image = base.check_input_shape(input_shape, "GANomaly")
  generator = Generator(input_shape, int(config.model.nz), int(config.model.base_features),
                        tuple(config.model.mlp_widths), jnp.dtype(config.compute_dtype))
  init, train_step = gan.reconstruction_gan(
      generator, discriminator(config, input_shape), base.adam(config.optim), config.ganomaly,
      WEIGHTS, lambda g_out: g_out[0], g_terms, d_scale=0.5,
      reinit_below=float(config.ganomaly.reinit_d_below))

  def make_score(train_bn: bool):
    def score(state, batch, key):
      del key  # Deterministic.
      # train_bn: the updated statistics are dropped; the state is not changed.
      (x_hat, z, z_hat), _ = base.apply(generator, state["params"]["g"],
                                        state["batch_stats"]["g"], batch, train=train_bn)
      residual = jnp.abs(batch - x_hat)
      outputs = {"score": jnp.mean(jnp.square(z - z_hat), axis=1),
                 "score_recon": losses.per_sample_mean(residual), "recon": x_hat}
      if is_image:
        outputs["map"] = residual.mean(axis=-1)
      return outputs
    return score

  # The reference's test() leaves netG in train mode; its MNIST and folder
  # test loaders shuffle (its CIFAR-10 loader does not).
  return base.Method(init, train_step, make_score(False),
                     paper_score=base.PaperScore(make_score(True), "shuffled"))
