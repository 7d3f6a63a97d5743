"""Tests of `methods.ganomaly`: the generator's shapes, its reconstruction loss, vector scores."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganad_jax.methods import ganomaly
import helpers

VECTOR = (10,)
KEY = jax.random.key(0)


@pytest.mark.parametrize("shape", [(16, 16, 1), (32, 32, 3), VECTOR])
def test_ganomaly_generator_shapes(shape):
  gen = ganomaly.Generator(shape, nz=5, base_features=4, mlp_widths=(8, 4))
  x = jnp.zeros((2,) + shape)
  variables = jax.eval_shape(functools.partial(gen.init, train=False), KEY, x)
  x_hat, z, z_hat = jax.eval_shape(functools.partial(gen.apply, train=False), variables, x)
  assert x_hat.shape == x.shape
  assert z.shape == z_hat.shape == (2, 5)
  # Two separate encoders, one decoder.
  assert set(variables["params"]) == {"encoder1", "decoder", "encoder2"}


def test_ganomaly_lowers_the_reconstruction_loss():
  _, shape, init, train_step, _ = helpers.jitted_gan("ganomaly_image")
  x = helpers.gan_batch(shape)
  state = init(KEY, x)
  state = {**state, "opt_state": jax.tree_util.tree_map(lambda a: a, state["opt_state"])}
  for net in ("g", "d"):  # Only to see the loss fall within a few steps.
    lr = state["opt_state"][net].hyperparams["learning_rate"]
    state["opt_state"][net].hyperparams["learning_rate"] = jnp.full_like(lr, 2e-3)
  state, first = train_step(state, x, jax.random.key(1))
  for i in range(15):
    state, metrics = train_step(state, x, jax.random.key(i))
  assert float(metrics["g_con"]) < 0.9 * float(first["g_con"])


def test_ganomaly_scores_vectors_by_latent_distance():
  _, shape, init, _, score = helpers.jitted_gan("ganomaly_vector_reinit")
  x = helpers.gan_batch(shape)
  out = score(init(KEY, x), x, KEY)
  assert out["score"].shape == (8,) and out["recon"].shape == (8,) + shape
  assert "map" not in out
  assert np.all(np.asarray(out["score"]) >= 0.0)
