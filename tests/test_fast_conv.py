"""Tests of `models.fast_conv`: the search's convolutions equal the flax modules'."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganad_jax import configs
from ganad_jax import latent_search
from ganad_jax.methods import anogan
from ganad_jax.models import fast_conv

NZ = 8


def test_fast_conv_apply_matches_the_modules():
  # apply_fast swaps in convolutions with precomputed backward kernels and
  # phase-decomposed transposed convs (layers with >= 16 output features):
  # same values and gradients as the flax modules.
  config = configs.base_config()
  config.model.nz, config.model.base_features = NZ, 16
  shape = (16, 16, 3)
  nets = anogan.Networks(config, shape)
  state = jax.jit(anogan.make(config, shape).init)(jax.random.key(0), jnp.zeros((2,) + shape))
  fast_g, fast_f = anogan.search_fns(nets, state, "penultimate")
  params, stats = state["params"], state["batch_stats"]

  def plain_g(z):
    return nets.generate(params["g"], stats["g"], z, train=False)

  def plain_f(x):
    return nets.discriminate(params["d"], stats["d"], x, train=False)[1]["penultimate"]

  z = jax.random.normal(jax.random.key(1), (3, NZ))
  x = jax.random.uniform(jax.random.key(2), (3,) + shape, minval=-1.0, maxval=1.0)

  def loss(g, f):
    return lambda z: latent_search.anomaly_loss(g, f, x, z, 0.5).sum()

  def outputs(g, f):
    return g(z), f(x), jax.grad(loss(g, f))(z)

  fast, plain = jax.jit(lambda z: (outputs(fast_g, fast_f), outputs(plain_g, plain_f)))(z)
  for got, expected in zip(fast, plain):
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
  jaxpr = str(jax.make_jaxpr(lambda z: fast_f(fast_g(z)))(z))
  assert "custom_vjp_call" in jaxpr  # The swap really happened.


@pytest.mark.parametrize("size,kernel,stride,pads", [
    (4, 4, 2, ((2, 2), (2, 2))),  # DCGAN transposed conv (k4 s2 SAME).
    (3, 5, 3, ((4, 4), (2, 3))),  # Odd kernel, stride 3, asymmetric padding.
])
def test_phase_decomposition_of_dilated_convs(size, kernel, stride, pads):
  x = jax.random.normal(jax.random.key(0), (2, size, size, 3))
  w = jax.random.normal(jax.random.key(1), (kernel, kernel, 3, 4))
  expected = jax.lax.conv_general_dilated(x, w, (1, 1), pads, lhs_dilation=(stride, stride),
                                          dimension_numbers=("NHWC", "HWIO", "NHWC"))
  phases = fast_conv._dilated_conv_by_phases  # pylint: disable=protected-access
  got = jax.jit(lambda x, w: phases(x, w, pads, stride))(x, w)
  if got is None:  # Output not a multiple of the stride: the caller falls back.
    assert expected.shape[1] % stride or expected.shape[2] % stride
  else:
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_conv_with_backward_kernel_gradients():
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 16))
  w = jax.random.normal(jax.random.key(1), (4, 4, 16, 32))
  dn = ("NHWC", "HWIO", "NHWC")
  for strides, pads, dilation in [((2, 2), ((1, 1), (1, 1)), (1, 1)),
                                  ((1, 1), ((2, 2), (2, 2)), (2, 2))]:
    def plain(x, w):
      return jnp.sum(jnp.sin(jax.lax.conv_general_dilated(
          x, w, strides, pads, lhs_dilation=dilation, dimension_numbers=dn)))

    def fast(x, w):
      return jnp.sum(jnp.sin(fast_conv.conv_with_backward_kernel(
          x, w, fast_conv.flip_kernel(w), strides, pads, dilation)))

    grads = jax.jit(lambda x, w: (jax.grad(fast, (0, 1))(x, w), jax.grad(plain, (0, 1))(x, w)))
    (fast_dx, fast_dw), (plain_dx, plain_dw) = grads(x, w)
    np.testing.assert_allclose(fast_dx, plain_dx, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(fast_dw, plain_dw, rtol=1e-4, atol=1e-4)
