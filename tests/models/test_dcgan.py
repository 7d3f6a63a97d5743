"""Tests of `models.dcgan`: shapes, parameter counts and init of the DCGAN nets."""

import jax
import jax.numpy as jnp
import pytest

from ganad_jax.models import dcgan
import helpers


@pytest.mark.parametrize("size,channels", [(16, 1), (32, 3), (64, 1), (128, 3)])
def test_encoder_decoder_shapes(size, channels):
  x = jnp.zeros((2, size, size, channels))
  encoder = dcgan.Encoder(out_features=10, base_features=8)
  variables = jax.jit(encoder.init)(jax.random.key(0), x)
  z, features = jax.jit(lambda v, x: encoder.apply(v, x, train=False))(variables, x)
  assert z.shape == (2, 10)
  stages = dcgan.num_halvings(size)
  assert features["penultimate"].shape == (2, 4, 4, 8 * 2**(stages - 1))
  decoder = dcgan.Decoder(size, channels, base_features=8)
  out = decoder.apply(jax.jit(decoder.init)(jax.random.key(1), z), z, train=False)
  assert out.shape == (2, size, size, channels)
  assert float(jnp.abs(out).max()) <= 1.0  # tanh output


def test_parameter_count_matches_dcgan_formula():
  # 32x32x1, 64 base features: conv 1->64, conv 64->128 (+BN), conv_out 256? No: 32 -> 16 -> 8 -> 4
  # conv0 1->64 (4x4), conv1 64->128 + BN, conv2 128->256 + BN, conv_out 256->nz.
  encoder = dcgan.Encoder(out_features=100, base_features=64)
  params = encoder.init(jax.random.key(0), jnp.zeros((1, 32, 32, 1)))["params"]
  expected = 16 * (1 * 64 + 64 * 128 + 128 * 256 + 256 * 100) + 2 * (128 + 256)
  assert helpers.param_count(params) == expected


def test_init_statistics_follow_dcgan():
  encoder = dcgan.Encoder(out_features=100, base_features=64)
  params = encoder.init(jax.random.key(0), jnp.zeros((1, 64, 64, 1)))["params"]
  kernel = params["conv2"]["kernel"]
  assert abs(float(kernel.std()) - 0.02) < 0.002
  assert abs(float(params["bn2"]["scale"].mean()) - 1.0) < 0.01


@pytest.mark.parametrize("size", [8, 24, 48])
def test_unsupported_sizes_are_named(size):
  with pytest.raises(ValueError, match=f"image_size={size}"):
    dcgan.Encoder(4).init(jax.random.key(0), jnp.zeros((1, size, size, 1)))


def test_discriminator_returns_logit_and_features():
  d = dcgan.Discriminator(base_features=8)
  x = jnp.zeros((3, 32, 32, 1))
  variables = d.init(jax.random.key(0), x)
  logit, features = d.apply(variables, x, train=False)
  assert logit.shape == (3,)
  assert set(features) == {"block0", "block1", "block2", "penultimate"}


def test_batchnorm_eval_mode_is_per_sample():
  # In eval mode a sample's output must not depend on the rest of the batch.
  encoder = dcgan.Encoder(out_features=4, base_features=8)
  x = jax.random.normal(jax.random.key(0), (4, 16, 16, 1))
  variables = encoder.init(jax.random.key(1), x)
  alone, _ = encoder.apply(variables, x[:1], train=False)
  batched, _ = encoder.apply(variables, x, train=False)
  assert jnp.allclose(alone[0], batched[0], atol=1e-5)
