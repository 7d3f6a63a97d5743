"""Tests of `flows.glow`: DifferNet's GLOW coupling, its permutations and the flow's NLL."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from ganad_jax.flows import glow


@pytest.fixture(scope="module", name="flow_params")
def fixture_flow_params():
  """A 3-block flow on 7 channels (an odd split, 3 + 4), its random init and 5 inputs."""
  flow = glow.GlowFlow(blocks=3, clamp=3.0, hidden=16)
  x = jax.random.normal(jax.random.key(1), (5, 7))
  return flow, jax.jit(flow.init)(jax.random.key(0), x), x


def test_round_trip_is_exact_and_log_dets_cancel(flow_params):
  flow, params, x = flow_params
  apply = jax.jit(flow.apply, static_argnames="reverse")
  z, log_det = apply(params, x)
  assert z.shape == x.shape and log_det.shape == (5,)
  assert float(jnp.max(jnp.abs(z - x))) > 0.1  # Not the identity: the test has teeth.
  back, inv_log_det = apply(params, z, reverse=True)
  np.testing.assert_allclose(back, x, atol=1e-5)
  np.testing.assert_allclose(inv_log_det, -log_det, atol=1e-5)


def test_log_det_equals_the_jacobian_of_jacfwd(flow_params):
  flow, params, x = flow_params
  log_det = jax.jit(flow.apply)(params, x)[1]
  one = lambda v: flow.apply(params, v[None])[0][0]
  jacs = np.asarray(jax.jit(jax.vmap(jax.jacfwd(one)))(x), np.float64)
  sign, logabs = np.linalg.slogdet(jacs)
  assert np.all(sign != 0)
  np.testing.assert_allclose(log_det, logabs, atol=1e-4)
  assert float(jnp.max(jnp.abs(log_det))) > 0.01  # The scales are not all 1.


class _Constant(nn.Module):
  """A subnet that ignores its input: the coupling becomes an elementwise affine map."""
  features: int

  @nn.compact
  def __call__(self, x):
    out = self.param("out", nn.initializers.normal(1.0), (self.features,))
    return jnp.broadcast_to(out, (*x.shape[:-1], self.features))


def test_nll_is_that_of_the_known_gaussian_the_flow_whitens():
  coupling = glow.GlowCoupling(lambda f, name: _Constant(f, name=name), clamp=3.0)
  x = jax.random.normal(jax.random.key(2), (4, 5)) * 2.0
  params = coupling.init(jax.random.key(3), x)
  z, log_det = coupling.apply(params, x)
  p = params["params"]
  s1, t1 = np.split(np.asarray(p["s1"]["out"]), [3])  # Second half: 3 channels.
  s2, t2 = np.split(np.asarray(p["s2"]["out"]), [2])  # First half: 2 channels.
  scale = np.exp(np.concatenate([glow.log_scale(s2, 3.0), glow.log_scale(s1, 3.0)]))
  shift = np.concatenate([t2, t1])
  # z = scale * x + shift is standard normal iff x ~ N(-shift / scale, 1 / scale^2).
  expected = -stats.norm.logpdf(np.asarray(x), -shift / scale, 1.0 / scale).sum(axis=1)
  np.testing.assert_allclose(glow.gaussian_nll(z, log_det), expected, rtol=1e-5)
  np.testing.assert_allclose(
      glow.reference_loss(z, log_det),
      np.mean(0.5 * np.sum(np.square(z), axis=1) - log_det) / 5, rtol=1e-5)


def test_soft_clamp_and_permutations_follow_the_reference():
  s = jnp.array([-1e9, -1.0, 0.0, 0.5, 1e9])
  clamped = glow.log_scale(s, 3.0)
  np.testing.assert_allclose(clamped, 3.0 * 0.636 * np.arctan(np.asarray(s) / 3.0), rtol=1e-6)
  assert float(jnp.max(jnp.abs(clamped))) < 3.0
  np.testing.assert_array_equal(glow.log_scale(s, 0.0), s)
  np.random.seed(5)  # The reference: np.random.seed(k); np.random.permutation(D).
  np.testing.assert_array_equal(glow.random_permutation(11, 5), np.random.permutation(11))
  x = jnp.arange(11.0)[None]
  perm = glow.random_permutation(11, 5)
  np.testing.assert_array_equal(glow.permute(glow.permute(x, perm), perm, reverse=True), x)
