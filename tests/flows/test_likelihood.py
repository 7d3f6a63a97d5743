"""Tests of `flows.likelihood` and `flows.spatial`: known densities and PyTorch's resampling."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from ganad_jax.flows import coupling
from ganad_jax.flows import likelihood
from ganad_jax.flows import spatial


def test_gaussian_log_prob_is_scipys():
  z = np.random.default_rng(0).normal(size=(5, 3, 4)).astype(np.float32)
  expected = stats.multivariate_normal(np.zeros(4), np.eye(4)).logpdf(z.reshape(-1, 4))
  np.testing.assert_allclose(likelihood.gaussian_log_prob(z), expected.reshape(5, 3), rtol=1e-5)
  np.testing.assert_allclose(likelihood.gaussian_log_prob(z, (1, 2)),
                             expected.reshape(5, 3).sum(1), rtol=1e-5)


def test_flow_nll_of_a_known_gaussian():
  """A block whose coupling is the identity and whose global affine whitens N(mu, diag sigma^2)."""
  rng = np.random.default_rng(1)
  mu, sigma = np.array([0.5, -1.0, 2.0]), np.array([0.5, 2.0, 1.5])
  x = (mu + sigma * rng.normal(size=(7, 3))).astype(np.float32)
  block = coupling.AllInOneBlock(subnet="dense")
  variables = jax.jit(block.init)(jax.random.key(0), x)
  params = jax.tree_util.tree_map(jnp.zeros_like, variables["params"])  # s = t = 0.
  g = 1.0 / sigma  # 0.1 * 2 softplus(raw / 2) = g.
  params["global_scale"] = jnp.asarray(2.0 * np.log(np.expm1(5.0 * g)), jnp.float32)
  params["global_offset"] = jnp.asarray(-mu / sigma, jnp.float32)
  z, logdet = jax.jit(block.apply)({"params": params}, x)
  expected = -stats.multivariate_normal(mu, np.diag(sigma**2)).logpdf(x)
  np.testing.assert_allclose(likelihood.flow_nll(z, logdet), expected, rtol=1e-5)
  const = 3 * likelihood.LOG_SQRT_2PI
  np.testing.assert_allclose(likelihood.fastflow_nll(z, logdet), expected - const, rtol=1e-5)


def test_location_log_prob_is_the_references_map():
  z = np.random.default_rng(2).normal(size=(2, 3, 3, 5)).astype(np.float32)
  np.testing.assert_allclose(likelihood.location_log_prob(z), -0.5 * (z**2).mean(-1), rtol=1e-6)


def test_spatial_helpers_match_pytorch():
  torch = pytest.importorskip("torch", reason="the comparison needs torch: pip install '.[torch]'")
  f = torch.nn.functional
  x = np.random.default_rng(3).normal(size=(2, 7, 5, 3)).astype(np.float32)
  xt = torch.from_numpy(x.transpose(0, 3, 1, 2))
  up = f.interpolate(xt, size=(16, 11), mode="bilinear", align_corners=True).numpy()
  np.testing.assert_allclose(spatial.resize_align_corners(x, (16, 11)), up.transpose(0, 2, 3, 1),
                             rtol=1e-5, atol=1e-6)
  pooled = f.adaptive_avg_pool2d(xt, (3, 2)).numpy()
  np.testing.assert_allclose(spatial.adaptive_avg_pool(x, (3, 2)), pooled.transpose(0, 2, 3, 1),
                             rtol=1e-5, atol=1e-6)
  avg = torch.nn.AvgPool2d(3, 2, 1)(xt).numpy()
  np.testing.assert_allclose(spatial.avg_pool_3x3(jnp.asarray(x)), avg.transpose(0, 2, 3, 1),
                             rtol=1e-5, atol=1e-6)


def test_positional_encoding_is_cflows():
  d, h, w = 8, 3, 5
  pe = spatial.positional_encoding_2d(d, h, w)
  div = np.exp(np.arange(0.0, 4, 2) * -(np.log(1e4) / 4))
  np.testing.assert_allclose(pe[1, 2, 0:4:2], np.sin(2 * div), rtol=1e-6)  # Columns.
  np.testing.assert_allclose(pe[1, 2, 1:4:2], np.cos(2 * div), rtol=1e-6)
  np.testing.assert_allclose(pe[1, 2, 4::2], np.sin(1 * div), rtol=1e-6)  # Rows.
  np.testing.assert_allclose(pe[1, 2, 5::2], np.cos(1 * div), rtol=1e-6)
  with pytest.raises(ValueError, match="multiple of 4 channels; got 6"):
    spatial.positional_encoding_2d(6, 2, 2)
