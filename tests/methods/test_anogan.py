"""Tests of `methods.anogan`: training step, scoring, tabular path, configs."""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganad_jax import configs
from ganad_jax import methods
from ganad_jax import train
from ganad_jax.methods import anogan
from configs import test as test_config
import helpers

IMAGE = (16, 16, 1)
VECTOR = (10,)


def _config(**search):
  config = configs.base_config("anogan")
  config.model.nz, config.model.base_features = 8, 8
  config.anogan.g_widths, config.anogan.d_widths = (16, 8), (16, 8)
  config.anogan.search.steps = 5
  config.anogan.search.update(search)
  return config


def _method(shape, feature_matching=False):
  """(method, init, train_step, score), jitted once per shape (compiles dominate the runtime)."""
  return _cached_method(shape, feature_matching)


@functools.lru_cache(maxsize=None)
def _cached_method(shape, feature_matching):
  config = _config()
  config.anogan.feature_matching = feature_matching
  method = methods.make(config, shape)
  # Feature matching changes only the G loss: share the compiled init.
  init = _cached_method(shape, False)[1] if feature_matching else jax.jit(method.init)
  return method, init, jax.jit(method.train_step), jax.jit(method.score)


def _batch(shape, n=8, seed=0):
  return jax.random.uniform(jax.random.key(seed), (n,) + shape, minval=-1.0, maxval=1.0)


def _changed(before, after):
  return jax.tree_util.tree_leaves(
      jax.tree_util.tree_map(lambda a, b: bool(jnp.any(a != b)), before, after))


@pytest.mark.parametrize("shape,feature_matching",
                         [(IMAGE, False), (VECTOR, False), (VECTOR, True)])
def test_train_step_updates_both_nets(shape, feature_matching):
  _, init, train_step, _ = _method(shape, feature_matching)
  x = _batch(shape)
  state = init(jax.random.key(0), x)
  new_state, metrics = train_step(state, x, jax.random.key(1))
  assert int(new_state["step"]) == 1
  for name in ("loss", "d_loss", "g_loss", "d_real", "d_fake"):
    assert np.isfinite(float(metrics[name])), name
  for net in ("g", "d"):
    assert all(_changed(state["params"][net], new_state["params"][net])), net
  if shape == IMAGE:  # BatchNorm running statistics move in train mode.
    for net in ("g", "d"):
      assert all(_changed(state["batch_stats"][net], new_state["batch_stats"][net])), net
  # A second step from the new state still works (the state round-trips).
  _, metrics = train_step(new_state, x, jax.random.key(2))
  assert np.isfinite(float(metrics["loss"]))


def test_state_is_a_dict_of_plain_arrays():
  _, init, _, _ = _method(IMAGE)
  state = init(jax.random.key(0), _batch(IMAGE))
  assert isinstance(state, dict) and "step" in state
  for leaf in jax.tree_util.tree_leaves(state):
    assert isinstance(leaf, jax.Array)
    assert not jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def test_score_images_in_eval_mode():
  _, init, train_step, score = _method(IMAGE)
  x = _batch(IMAGE, seed=3)[:6]
  state = init(jax.random.key(0), _batch(IMAGE))
  state, _ = train_step(state, _batch(IMAGE), jax.random.key(1))
  out = score(state, x, jax.random.key(2))
  assert out["score"].shape == (6,)
  assert out["map"].shape == (6, 16, 16)
  assert out["recon"].shape == (6,) + IMAGE
  assert {"score_residual", "score_feature"} <= set(out)
  for name in ("score", "score_residual", "score_feature", "map"):
    assert np.all(np.isfinite(out[name])), name
  np.testing.assert_allclose(out["map"].reshape(6, -1).sum(1) * IMAGE[2],
                             out["score_residual"], rtol=1e-4)
  # Eval-mode BatchNorm: a sample's score ignores the rest of the batch.
  perm = np.array([5, 3, 0, 1, 4, 2])
  shuffled = score(state, x[perm], jax.random.key(2))
  np.testing.assert_allclose(shuffled["score"], out["score"][perm], rtol=1e-5)
  other = x.at[1:].set(_batch(IMAGE, n=5, seed=9))
  np.testing.assert_allclose(score(state, other, jax.random.key(2))["score"][0],
                             out["score"][0], rtol=1e-5)


def test_score_tabular():
  _, init, train_step, score = _method(VECTOR)
  x = _batch(VECTOR)
  state = init(jax.random.key(0), x)
  state, _ = train_step(state, x, jax.random.key(1))
  out = score(state, x, jax.random.key(2))
  assert out["score"].shape == (8,)
  assert out["recon"].shape == (8,) + VECTOR
  assert "map" not in out
  assert np.all(np.isfinite(out["score"]))


def test_rejects_what_it_cannot_do():
  with pytest.raises(ValueError, match="encoder"):
    anogan.make(_config(init="encoder"), IMAGE)
  key = jax.random.key(0)
  with pytest.raises(ValueError, match="power of two"):
    jax.eval_shape(anogan.make(_config(), (24, 24, 1)).init, key, jnp.zeros((2, 24, 24, 1)))
  with pytest.raises(ValueError, match="images"):
    anogan.make(_config(), (4, 4))
  method = anogan.make(_config(feature_layer="block9"), IMAGE)
  x = jnp.zeros((2,) + IMAGE)
  state = jax.eval_shape(method.init, key, x)
  with pytest.raises(ValueError, match="feature_layer"):
    jax.eval_shape(method.score, state, x, key)


@pytest.mark.parametrize("name,arg", [("anogan_digits.py", None), ("anogan_digits.py", "digit=3"),
                                      ("anogan_magnetic_tile.py", None)])
def test_experiment_configs_are_valid(name, arg):
  config = helpers.experiment_config(name, arg)
  assert config.method == "anogan"
  if arg == "digit=3":
    assert config.data.class_index == 3


def test_patch_discriminator_trains_and_scores():
  config = test_config.get_config("method=anogan")
  config.model.discriminator, config.model.patch_layers = "patch", 2
  config.anogan.search.steps = 3
  method = methods.make(config, (16, 16, 1))
  batch = jax.random.uniform(jax.random.key(0), (4, 16, 16, 1), minval=-1.0, maxval=1.0)
  state = jax.jit(method.init)(jax.random.key(1), batch)
  state, metrics = jax.jit(method.train_step)(state, batch, jax.random.key(2))
  assert np.isfinite(float(metrics["loss"]))
  out = jax.jit(method.score)(state, batch, jax.random.key(3))
  assert out["score"].shape == (4,) and np.all(np.isfinite(out["score"]))


def test_run_draws_a_latent_walk_through_the_generator(tmp_path):
  config = test_config.get_config("method=anogan")
  config.anogan.search.steps = 2
  results = train.train_and_evaluate(config, str(tmp_path))
  assert "figures/latent_walk.png" in results["figures"]
  assert os.path.getsize(tmp_path / "figures" / "latent_walk.png") > 0
  state = jax.jit(methods.make(config, (16, 16, 1)).init)(
      jax.random.key(0), jnp.zeros((2, 16, 16, 1)))
  images = methods.make(config, (16, 16, 1)).generate(state, jnp.zeros((3, config.model.nz)))
  assert images.shape == (3, 16, 16, 1)
