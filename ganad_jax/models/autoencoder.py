"""Encoder and decoder networks for either input kind: DCGAN for images, MLP for vectors.

The AE, VAE, GANomaly and EGBAD methods make the same choice: images (H, W, C)
go through `dcgan.Encoder` / `dcgan.Decoder`, vectors (F,) through `mlp.MLP`.
Both factories return an unnamed module, so a parent's attribute (in `setup`)
names it and parameter paths stay `<attribute>/...`.
`EncoderDecoder` holds the fields the AE, VAE and GANomaly generator share.

Both nets are called as `net(x, train)`. The encoder returns (output, features
dict) either way; the decoder returns the reconstruction array alone either way.
"""

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from ganad_jax.models import dcgan
from ganad_jax.models import mlp


def encoder(input_shape: Sequence[int], out_features: int, base_features: int,
            mlp_widths: Sequence[int], dtype: Any) -> nn.Module:
  """Input -> (N, out_features): `dcgan.Encoder` for images, else `mlp.MLP`.

  Args:
    input_shape: (H, W, C) or (F,), no batch axis.
    out_features: output size (nz, 2 * nz for a VAE's mean and log variance).
    base_features: channels of the DCGAN encoder's first conv (images only).
    mlp_widths: hidden widths of the MLP, input side first (vectors only).
    dtype: computation dtype.
  """
  if len(input_shape) == 3:
    return dcgan.Encoder(out_features, base_features, dtype)
  return mlp.MLP(tuple(mlp_widths), out_features, dtype=dtype)


def decoder(input_shape: Sequence[int], base_features: int, mlp_widths: Sequence[int],
            dtype: Any) -> nn.Module:
  """Latent (N, nz) -> input shape: `dcgan.Decoder` (tanh) for images, else `mlp.MLP` (linear).

  Args:
    input_shape: (H, W, C) or (F,) of the reconstruction, no batch axis; images
      must be square.
    base_features: channels of the DCGAN decoder's last hidden layer (images only).
    mlp_widths: hidden widths of the MLP, latent side first (vectors only). An
      autoencoder mirrors its encoder by passing the encoder's widths reversed;
      a GAN generator passes its own.
    dtype: computation dtype.
  """
  if len(input_shape) == 3:
    size, _, channels = input_shape
    return dcgan.Decoder(size, channels, base_features, dtype)
  return mlp.MLP(tuple(mlp_widths), input_shape[0], dtype=dtype, return_features=False)


class EncoderDecoder(nn.Module):
  """Base of the modules built from `encoder` and `decoder` nets of one configuration.

  Subclasses assign the nets in `setup` (the attribute names set the parameter
  paths) and define `__call__`.

  Attributes:
    input_shape: (H, W, C) images (DCGAN nets) or (F,) vectors (MLPs).
    nz: latent size.
    base_features: channels of the DCGAN nets' first conv.
    mlp_widths: hidden widths of the tabular encoders (the decoder reverses them).
    dtype: computation dtype.
  """
  input_shape: tuple[int, ...]
  nz: int
  base_features: int
  mlp_widths: tuple[int, ...]
  dtype: Any = jnp.float32

  @nn.nowrap  # Builds an unbound net for `setup` to assign; no scope needed.
  def make_encoder(self, out_features: int) -> nn.Module:
    return encoder(self.input_shape, out_features, self.base_features, self.mlp_widths,
                   self.dtype)

  @nn.nowrap
  def make_decoder(self) -> nn.Module:
    return decoder(self.input_shape, self.base_features, self.mlp_widths[::-1], self.dtype)
