"""Tests of `models.mlp`: shapes and parameters of the MLP."""

import flax
import jax
import jax.numpy as jnp

from ganad_jax.models import mlp
import helpers


def test_mlp_shapes():
  net = mlp.MLP(widths=(20, 10), out_features=3)
  x = jnp.zeros((5, 7))
  variables = net.init(jax.random.key(0), x)
  out, features = net.apply(variables, x)
  assert out.shape == (5, 3) and features["penultimate"].shape == (5, 10)
  assert helpers.param_count(flax.core.unfreeze(variables)["params"]) == (
      7 * 20 + 20 + 20 * 10 + 10 + 10 * 3 + 3)


def test_mlp_without_features_has_the_same_parameters():
  x = jnp.ones((2, 7))
  with_features = mlp.MLP(widths=(5,), out_features=3)
  variables = with_features.init(jax.random.key(0), x)
  out, _ = with_features.apply(variables, x)
  alone = mlp.MLP(widths=(5,), out_features=3, return_features=False).apply(variables, x)
  assert jnp.array_equal(out, alone)
