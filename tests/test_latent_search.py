"""Tests of the batched AnoGAN latent search (tiny untrained DCGAN / MLP nets)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ganad_jax import configs
from ganad_jax import latent_search
from ganad_jax.methods import anogan

NZ = 8
IMAGE = (16, 16, 1)
VECTOR = (10,)
# Batched vs alone: the same per-row arithmetic on batches of different sizes;
# XLA may pick other kernels for other batch sizes, so allow float32 rounding.
RTOL = 1e-5


@functools.lru_cache(maxsize=None)
def _nets(shape):
  """Eval-mode (generate_fn, feature_fn) of tiny untrained AnoGAN nets for `shape`."""
  config = configs.base_config("anogan")
  config.model.nz, config.model.base_features = NZ, 8
  config.anogan.g_widths, config.anogan.d_widths = (16, 8), (16, 8)
  nets = anogan.Networks(config, shape)
  method = anogan.make(config, shape)
  state = jax.jit(method.init)(jax.random.key(1), jnp.zeros((2,) + shape))
  return anogan.search_fns(nets, state, "penultimate")


def _config(**overrides):
  config = configs.methods.anogan.search_config()
  config.steps = 20
  config.update(overrides)
  return config


@functools.lru_cache(maxsize=None)
def _jitted_search(shape, **overrides):
  generate_fn, feature_fn = _nets(shape)
  config = _config(**overrides)
  return jax.jit(lambda x, key: latent_search.search(generate_fn, feature_fn, x, key, config, NZ))


def _images(n, seed=0):
  return jax.random.uniform(jax.random.key(seed), (n,) + IMAGE, minval=-1.0, maxval=1.0)


def _vectors(n, seed=0):
  return jax.random.normal(jax.random.key(seed), (n,) + VECTOR)


def test_batched_search_equals_search_alone_and_ignores_order():
  # DCGAN nets with BatchNorm in eval mode, random starting points, three chunks
  # (the last one padded): each sample must get the score of its search alone,
  # and shuffling the inputs (which regroups the chunks) must change nothing.
  x, key = _images(7), jax.random.key(3)
  search = _jitted_search(IMAGE, init="normal", steps=10, chunk_size=3)
  batched = search(x, key)
  assert batched.residual_map.shape == (7, 16, 16)
  assert batched.x_hat.shape == (7,) + IMAGE
  assert batched.loss_trajectory.shape == (7, 10)
  for i in range(x.shape[0]):
    alone = search(x[i:i + 1], key)
    np.testing.assert_allclose(alone.score[0], batched.score[i], rtol=RTOL)
    np.testing.assert_allclose(alone.z[0], batched.z[i], rtol=RTOL, atol=1e-6)
    np.testing.assert_allclose(alone.loss_trajectory[0], batched.loss_trajectory[i], rtol=RTOL)
  perm = np.random.default_rng(0).permutation(7)
  shuffled = search(x[perm], key)
  np.testing.assert_allclose(shuffled.score, batched.score[perm], rtol=RTOL)
  np.testing.assert_allclose(shuffled.z, batched.z[perm], rtol=RTOL, atol=1e-6)


def test_tabular_search_with_restarts():
  # MLP nets, 3 chunks (the last padded), 3 restarts from truncated normals.
  generate_fn, feature_fn = _nets(VECTOR)
  lam = 0.1
  x, key = _vectors(9), jax.random.key(1)
  search = _jitted_search(VECTOR, init="truncated_normal", chunk_size=4, restarts=3, lr=0.05)
  result = search(x, key)
  perm = np.random.default_rng(1).permutation(9)
  np.testing.assert_allclose(search(x[perm], key).score, result.score[perm], rtol=RTOL)
  assert result.residual_map.shape == (9, 10)
  assert result.x_hat.shape == (9, 10)
  trajectory = np.asarray(result.loss_trajectory)
  assert np.all(trajectory[:, -1] < trajectory[:, 0])
  # Restarts: the best is kept, and they really started at different points.
  assert result.restart_scores.shape == (9, 3)
  np.testing.assert_allclose(result.score, result.restart_scores.min(axis=1), rtol=RTOL)
  assert np.all(result.score <= result.restart_scores.T + 1e-4 * np.abs(result.score))
  assert np.all(np.ptp(np.asarray(result.restart_scores), axis=1) > 0)
  # 'best' returns the best iterate: never worse than any loss on the way.
  assert np.all(np.asarray(result.score) <= trajectory.min(axis=1) * (1 + 1e-6))
  # Every output describes the returned z.
  np.testing.assert_allclose(result.x_hat, generate_fn(result.z), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(
      result.score, latent_search.anomaly_loss(generate_fn, feature_fn, x, result.z, lam),
      rtol=1e-5)
  np.testing.assert_allclose(
      result.score, (1 - lam) * result.score_residual + lam * result.score_feature, rtol=1e-5)
  np.testing.assert_allclose(result.residual_map, np.abs(np.asarray(x - result.x_hat)),
                             rtol=1e-5, atol=1e-6)


def test_content_hash_follows_content_not_position():
  x = np.asarray(_images(4))
  content_hash = jax.jit(latent_search.content_hash)
  h = np.asarray(content_hash(x))
  assert len(set(h.tolist())) == 4
  np.testing.assert_array_equal(content_hash(x[::-1]), h[::-1])
  np.testing.assert_array_equal(content_hash(np.stack([x[2], x[2], x[2], x[2]])), [h[2]] * 4)
  # Two samples with the same values at swapped positions hash differently.
  swapped = np.zeros((2, 16, 16, 1), np.float32)
  swapped[0, 0, 0, 0] = swapped[1, 0, 1, 0] = 1.0
  h_swapped = np.asarray(content_hash(np.concatenate([swapped, swapped])))
  assert h_swapped[0] != h_swapped[1]


def test_early_stop_freezes_a_sample():
  x = _vectors(2)
  patience = 3
  # min_delta so large that no step counts as an improvement after the first.
  # lam = 0: the residual-only search, which never calls the discriminator.
  stopped = _jitted_search(VECTOR, patience=patience, min_delta=1e6, select="final", lam=0.0)(
      x, jax.random.key(0))
  # Active for steps 0..patience; frozen at step `patience` (no update there).
  np.testing.assert_array_equal(stopped.steps_used, [patience + 1, patience + 1])
  # After freezing the loss no longer moves, and the returned (final) z is the
  # frozen one: its loss is the loss repeated since the freeze.
  trajectory = np.asarray(stopped.loss_trajectory)
  np.testing.assert_array_equal(
      trajectory[:, patience:], np.broadcast_to(trajectory[:, patience:patience + 1], (2, 17)))
  assert np.all(trajectory[:, patience] != trajectory[:, 0])  # It did move before.
  np.testing.assert_allclose(stopped.score, trajectory[:, -1], rtol=RTOL)
  np.testing.assert_array_equal(stopped.score_feature, [0.0, 0.0])
  np.testing.assert_allclose(stopped.score, stopped.score_residual, rtol=RTOL)


def test_warm_start_recovery_and_early_stop():
  generate_fn, feature_fn = _nets(VECTOR)
  z_star = jax.random.normal(jax.random.key(8), (2, NZ))
  x = jnp.concatenate([generate_fn(z_star), 2.0 * _vectors(1, seed=3)])
  # Sample 0 starts at its optimum; sample 1 near its optimum; sample 2 is
  # not reproducible by G. The warm start plays an encoder's role.
  start = jnp.stack([z_star[0], z_star[1] + 0.5 * jax.random.normal(jax.random.key(9), (NZ,)),
                     z_star[0]])
  config = _config(steps=150, lr=0.05, init="encoder", patience=10, min_delta=1e-4)
  search = jax.jit(lambda x: latent_search.search(
      generate_fn, feature_fn, x, jax.random.key(0), config, NZ, z_init_fn=lambda _: start))
  result = search(x)
  trajectory = np.asarray(result.loss_trajectory)
  steps_used = np.asarray(result.steps_used)
  assert steps_used[0] <= 11  # Nothing to improve: frozen after `patience` steps.
  assert result.score[0] < 1e-6
  assert result.score[1] < 0.2 * trajectory[1, 0]  # Recovered (the L1 loss is rough).
  assert result.score[1] < 2e-2 * result.score[2]
  assert steps_used[2] > 5 * steps_used[0]


def test_loss_weighting_matches_hand_computation():
  lam = 0.3
  generate_fn, feature_fn = _nets(IMAGE)
  x = _images(3)
  z = jax.random.normal(jax.random.key(2), (3, NZ))
  got, x_hat, fx, fg = map(np.asarray, jax.jit(lambda x, z: (
      latent_search.anomaly_loss(generate_fn, feature_fn, x, z, lam),
      generate_fn(z), feature_fn(x), feature_fn(generate_fn(z))))(x, z))
  residual = np.abs(np.asarray(x) - x_hat).reshape(3, -1).sum(1)
  feature = np.abs(fx - fg).reshape(3, -1).sum(1)
  np.testing.assert_allclose(got, (1 - lam) * residual + lam * feature, rtol=1e-5)


def test_piecewise_schedule():
  config = _config(schedule="piecewise")
  schedule = latent_search.learning_rate_schedule(config)
  np.testing.assert_allclose([schedule(s) for s in (0, 199, 200, 299, 300, 499)],
                             [0.01, 0.01, 0.001, 0.001, 0.0005, 0.0005], rtol=1e-6)


def test_per_sample_optimizer_state_is_per_row():
  # Adam must treat each row alone: updating rows together equals updating each alone.
  tx = latent_search.make_optimizer(_config())
  grads = jnp.array([[1.0, -2.0], [1e-3, 5.0]])
  z = jnp.zeros_like(grads)

  @jax.jit
  def updates(grads, z):
    together, _ = jax.vmap(tx.update)(grads, jax.vmap(tx.init)(z))
    alone = [tx.update(grads[i], tx.init(z[i]))[0] for i in range(2)]
    return together, alone

  together, alone = updates(grads, z)
  for i in range(2):
    np.testing.assert_allclose(together[i], alone[i], rtol=1e-6)
  assert isinstance(tx, optax.GradientTransformation)


@pytest.mark.parametrize("field,value", [("init", "uniform"), ("lam", 1.5), ("steps", 0),
                                         ("select", "last"), ("optimizer", "lbfgs")])
def test_invalid_config_is_rejected(field, value):
  config = _config(**{field: value})
  with pytest.raises(ValueError, match=field):
    latent_search.validate(config)


def test_encoder_init_needs_a_function():
  generate_fn, feature_fn = _nets(VECTOR)
  with pytest.raises(ValueError, match="z_init_fn"):
    latent_search.search(generate_fn, feature_fn, _vectors(1), jax.random.key(0),
                         _config(init="encoder"), NZ)
