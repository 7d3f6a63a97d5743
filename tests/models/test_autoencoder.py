"""Tests of `models.autoencoder`: the decoder of either input kind."""

import jax
import jax.numpy as jnp
import pytest

from ganad_jax.models import autoencoder


@pytest.mark.parametrize("input_shape", [(16, 16, 1), (7,)])
def test_decoders_return_the_reconstruction_alone(input_shape):
  # One return type for every decoder: the array, whatever the input kind.
  decoder = autoencoder.decoder(input_shape, base_features=4, mlp_widths=(6,), dtype=jnp.float32)
  z = jnp.zeros((2, 3))
  variables = jax.eval_shape(decoder.init, jax.random.key(0), z)
  out = jax.eval_shape(lambda v: decoder.apply(v, z, train=False), variables)
  assert isinstance(out, jax.ShapeDtypeStruct) and out.shape == (2,) + input_shape
