"""Autoencoder baselines: AE with L2 loss and SSIM-AE (Bergmann et al. 2018).

Images go through the DCGAN encoder / decoder (the GANomaly shapes); tabular
vectors through an MLP. The anomaly map is the per-pixel squared residual (L2)
or 1 - SSIM map (SSIM); the score is the map's mean, the quantity the net was
trained to minimise. Feature net (`base.FeatureNet`): "encoder", x -> (z, features).
"""

import jax
import jax.numpy as jnp

from ganad_jax import losses
from ganad_jax.methods import base
from ganad_jax.models import autoencoder


class AutoEncoder(autoencoder.EncoderDecoder):
  """x -> x_hat: encoder to the latent, decoder back."""

  def setup(self):
    self.encoder = self.make_encoder(self.nz)
    self.decoder = self.make_decoder()

  def __call__(self, x, train: bool = True):
    z, _ = self.encoder(x, train)
    return self.decoder(z, train)


def make(config, input_shape: tuple[int, ...], loss: str) -> base.Method:
  """Builds the AE method; `loss` is "l2" or "ssim" (images only)."""
  input_shape = tuple(input_shape)
  if loss == "ssim" and len(input_shape) != 3:
    raise ValueError("ssim_ae needs images (N, H, W, C); got vectors of shape "
                     f"{input_shape}: use method 'ae' for tabular data.")
  is_image = base.check_input_shape(input_shape, "ssim_ae" if loss == "ssim" else "ae")
  net = AutoEncoder(input_shape, config.model.nz, config.model.base_features,
                    tuple(config.model.mlp_widths), jnp.dtype(config.compute_dtype))
  tx = base.adam(config.optim)

  def anomaly_map(x, recon):
    if loss == "ssim":
      return 1.0 - losses.ssim_map(x, recon, config.ssim.window, config.ssim.sigma)
    if is_image:
      return losses.squared_error_map(x, recon)
    return jnp.square(x - recon)  # Tabular: per-feature residual.

  def init(key, batch):
    variables = net.init(key, batch, train=False)
    params = variables["params"]
    return {"step": jnp.zeros((), jnp.int32), "params": params,
            "batch_stats": variables.get("batch_stats", {}),
            "opt_state": tx.init(params)}

  def train_step(state, batch, key):
    del key  # Deterministic given the batch.

    def loss_fn(params):
      recon, batch_stats = base.apply(net, params, state["batch_stats"], batch, train=True)
      return anomaly_map(batch, recon).mean(), batch_stats

    (loss_value, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
    params, opt_state = base.adam_update(tx, grads, state["opt_state"], state["params"])
    return base.next_state(state, params=params, batch_stats=batch_stats,
                           opt_state=opt_state), {"loss": loss_value}

  def score(state, batch, key):
    del key
    recon, _ = base.apply(net, state["params"], state["batch_stats"], batch, train=False)
    amap = anomaly_map(batch, recon)
    outputs = {"score": losses.per_sample_mean(amap), "recon": recon}
    if is_image:
      outputs["map"] = amap
    return outputs

  encoder = net.make_encoder(config.model.nz)  # The same net as `net`'s "encoder".

  def select_encoder(state):
    return {"params": state["params"]["encoder"],
            "batch_stats": state["batch_stats"].get("encoder", {})}

  def apply_encoder(variables, x):
    return encoder.apply(variables, x, train=False)

  return base.Method(init, train_step, score,
                     features={"encoder": base.FeatureNet(select_encoder, apply_encoder)})
