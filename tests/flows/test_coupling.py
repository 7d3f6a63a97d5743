"""Tests of `flows.coupling` and `flows.fusion`: inverses and exact log-determinants."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganad_jax.flows import coupling
from ganad_jax.flows import fusion

def _perturbed(variables, seed=1, scale=0.3):
  """Random non-trivial parameters: every leaf moved by scale * N(0, 1)."""
  leaves, tree = jax.tree_util.tree_flatten(variables)  # One jitted map, not op by op.
  move = jax.jit(lambda leaves: [x + scale * jax.random.normal(jax.random.key(seed + i), x.shape)
                                 for i, x in enumerate(leaves)])
  return jax.tree_util.tree_unflatten(tree, move(leaves))


def _slogdet(jac):
  return np.linalg.slogdet(np.asarray(jac, np.float64))[1]


CASES = {
    "conv3_maps": dict(x=(2, 4, 3, 5), cond=None, flow=dict(kernels=(3, 1), subnet="conv")),
    "conv_ln_cond": dict(x=(2, 3, 3, 4), cond=(2, 3, 3, 4), flow=dict(kernels=(3, 3),
                                                                      subnet="conv_ln")),
    "dense_soft_cond": dict(x=(3, 6), cond=(3, 4), flow=dict(kernels=(0, 0, 0), subnet="dense",
                                                             permute_soft=True, clamp=1.9)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_flow_inverts_and_logdet_equals_jacobian(name):
  case = CASES[name]
  flow = coupling.Flow(**case["flow"])
  x = jax.random.normal(jax.random.key(0), case["x"])
  cond = None if case["cond"] is None else jax.random.normal(jax.random.key(2), case["cond"])
  variables = _perturbed(jax.jit(flow.init)(jax.random.key(3), x, cond))

  @jax.jit
  def run(x, cond):
    z, logdet = flow.apply(variables, x, cond)
    back, inv_logdet = flow.apply(variables, z, cond, reverse=True)
    one = lambda v: flow.apply(variables, v.reshape(x[:1].shape), cond[:1])[0].reshape(-1)
    return z, logdet, back, inv_logdet, jax.jacfwd(one)(x[0].reshape(-1))

  cond_in = jnp.zeros(x.shape[:-1] + (0,)) if cond is None else cond  # 0 channels: no condition.
  z, logdet, back, inv_logdet, jac = run(x, cond_in)
  assert z.shape == x.shape and logdet.shape == (x.shape[0],)
  np.testing.assert_allclose(back, x, atol=1e-5, rtol=0)
  np.testing.assert_allclose(inv_logdet, -logdet, rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(logdet[0], _slogdet(jac), rtol=1e-4, atol=1e-3)
  assert np.all(np.abs(logdet) > 1e-2)  # The parameters make a non-volume-preserving map.


def test_block_starts_as_the_references_global_scale_and_keeps_the_passive_half():
  block = coupling.AllInOneBlock(clamp=2.0, subnet="conv", global_affine_init=1.0)
  x = jax.random.normal(jax.random.key(0), (2, 4, 4, 5))
  variables = jax.jit(block.init)(jax.random.key(1), x)
  g_raw = variables["params"]["global_scale"]
  np.testing.assert_allclose(0.2 * jax.nn.softplus(0.5 * g_raw), 1.0, rtol=1e-6)
  y, _ = block.apply(variables, x)
  perm = coupling.permutation(5, 0, False)
  # The passive half (first 3 channels) leaves the coupling untouched: scale 1, offset 0.
  passive = np.asarray(y)[..., np.argsort(perm)][..., :3]
  np.testing.assert_allclose(passive, x[..., :3], rtol=1e-6)


def test_soft_clamp_bounds_the_log_scale():
  block = coupling.AllInOneBlock(clamp=0.5, subnet="dense")
  x = jax.random.normal(jax.random.key(0), (4, 4))
  variables = _perturbed(jax.jit(block.init)(jax.random.key(1), x), scale=50.0)
  variables["params"]["global_scale"] = jnp.full((4,), 2.0 * np.log(np.exp(5.0) - 1.0))
  _, logdet = block.apply(variables, x)
  assert np.all(np.abs(logdet) <= 0.5 * 2 + 1e-5)  # C2 = 2 active channels, |s| <= clamp.


def test_fusion_flow_inverts_and_logdet_equals_jacobian():
  shapes = [(1, 4, 4, 4), (1, 2, 2, 6)]
  keys = jax.random.split(jax.random.key(0), len(shapes))
  xs = [jax.random.normal(k, s) for k, s in zip(keys, shapes)]
  flow = fusion.FusionFlow(clamp=1.9)
  variables = _perturbed(jax.jit(flow.init)(jax.random.key(1), xs))
  apply = jax.jit(lambda xs, reverse: flow.apply(variables, xs, reverse), static_argnums=1)
  zs, logdet = apply(xs, False)
  back, inv_logdet = apply(zs, True)
  for a, b in zip(back, xs):
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
  np.testing.assert_allclose(inv_logdet, -logdet, rtol=1e-5, atol=1e-4)
  sizes = [int(np.prod(s)) for s in shapes]

  def flat(v):
    parts = np.split(np.arange(sum(sizes)), np.cumsum(sizes)[:-1])
    ins = [v[p].reshape(s) for p, s in zip(parts, shapes)]
    return jnp.concatenate([z.reshape(-1) for z in flow.apply(variables, ins)[0]])

  v = jnp.concatenate([x.reshape(-1) for x in xs])
  jac = jax.jit(jax.jacfwd(flat))(v)
  np.testing.assert_allclose(logdet[0], _slogdet(jac), rtol=1e-4, atol=1e-3)
  assert abs(float(logdet[0])) > 1e-2


def test_fusion_flow_refuses_odd_channels():
  xs = [jnp.zeros((1, 4, 4, 3)), jnp.zeros((1, 2, 2, 4))]
  with pytest.raises(ValueError, match=r"even channel count per scale; got \[3, 4\]"):
    fusion.FusionFlow().init(jax.random.key(0), xs)


def test_unknown_subnet_is_refused():
  with pytest.raises(ValueError, match="subnet kind 'mlp'"):
    coupling.Subnet(4, "mlp").init(jax.random.key(0), jnp.zeros((1, 4)))
