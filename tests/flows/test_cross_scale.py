"""Tests of `flows.cross_scale`: CS-Flow's cross-scale convolutions and parallel couplings."""

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganad_jax.flows import cross_scale
from ganad_jax.flows import glow

C = 4


def _scales(grids, n=2, seed=1):
  keys = jax.random.split(jax.random.key(seed), 3)
  return tuple(jax.random.normal(k, (n, g, g, C)) for k, g in zip(keys, grids))


def _with_random_gammas(params):
  """The reference initialises every gamma at 0 (an identity flow); tests need a real map."""
  flat = flax.traverse_util.flatten_dict(params)
  for i, path in enumerate(sorted(flat)):
    if path[-1].startswith("gamma"):
      flat[path] = jnp.full((1,), 0.3 + 0.1 * (i % 5))
  return flax.traverse_util.unflatten_dict(flat)


@pytest.fixture(scope="module", name="flow_params")
def fixture_flow_params():
  """A 2-block flow (kernels 3 and 5) on grids 7, 4, 2 (odd: ceil halves), random gammas."""
  flow = cross_scale.CrossScaleFlow(kernels=(3, 5), hidden=8, clamp=3.0)
  xs = _scales((7, 4, 2))
  params = jax.jit(flow.init)(jax.random.key(0), xs)
  return flow, params, _with_random_gammas(params), xs


def test_round_trip_is_exact_and_log_dets_cancel(flow_params):
  flow, _, params, xs = flow_params
  apply = jax.jit(flow.apply, static_argnames="reverse")
  zs, log_dets = apply(params, xs)
  assert [z.shape for z in zs] == [x.shape for x in xs] and len(log_dets) == 3
  assert min(float(jnp.max(jnp.abs(z - x))) for z, x in zip(zs, xs)) > 0.05
  back, inv = apply(params, zs, reverse=True)
  for b, x in zip(back, xs):
    np.testing.assert_allclose(b, x, atol=1e-5)
  for a, b in zip(inv, log_dets):
    np.testing.assert_allclose(a, -b, atol=1e-4)


def test_log_det_equals_the_jacobian_of_jacfwd(flow_params):
  flow, _, params, xs = flow_params
  sizes = [x[0].size for x in xs]
  shapes = [x.shape[1:] for x in xs]

  def one(v):  # One example's 3 scales, flattened and concatenated, -> its z likewise.
    parts = jnp.split(v, np.cumsum(sizes)[:-1])
    zs, _ = flow.apply(params, tuple(p.reshape(1, *s) for p, s in zip(parts, shapes)))
    return jnp.concatenate([z.reshape(-1) for z in zs])

  v = jnp.stack([jnp.concatenate([x[i].reshape(-1) for x in xs]) for i in range(2)])
  jacs = np.asarray(jax.jit(jax.vmap(jax.jacfwd(one)))(v), np.float64)
  sign, logabs = np.linalg.slogdet(jacs)
  assert np.all(sign != 0)
  log_dets = jax.jit(flow.apply)(params, xs)[1]
  np.testing.assert_allclose(sum(log_dets), logabs, rtol=1e-4, atol=1e-3)
  assert float(jnp.max(jnp.abs(log_dets[0]))) > 0.1


def test_at_init_the_flow_is_a_permutation_and_its_nll_that_of_a_standard_normal(flow_params):
  """gamma = 0 (the reference's init): z is x permuted, log|det| = 0, the NLL of N(0, I)."""
  flow, params, _, xs = flow_params
  zs, log_dets = jax.jit(flow.apply)(params, xs)
  for z, x, ld in zip(zs, xs, log_dets):
    np.testing.assert_allclose(np.sort(np.asarray(z), -1), np.sort(np.asarray(x), -1))
    np.testing.assert_array_equal(ld, 0.0)
    expected = 0.5 * np.sum(np.square(x), axis=(1, 2, 3)) + 0.5 * x[0].size * np.log(2 * np.pi)
    np.testing.assert_allclose(glow.gaussian_nll(z, ld), expected, rtol=1e-5)


def test_permutations_follow_the_reference():
  np.random.seed(3)  # ParallelPermute(seed=3): one generator, scale after scale.
  expected = [np.random.permutation(10) for _ in range(3)]
  for got, want in zip(cross_scale.parallel_permutations(10, 3), expected):
    np.testing.assert_array_equal(got, want)
