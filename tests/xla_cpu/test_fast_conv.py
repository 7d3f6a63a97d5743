"""Tests of `xla_cpu.fast_conv`: its convolutions equal the flax modules' (search and lowering)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganad_jax import configs
from ganad_jax import latent_search
from ganad_jax import methods
from ganad_jax.methods import anogan
from ganad_jax.xla_cpu import fast_conv

NZ = 8


def test_fast_conv_apply_matches_the_modules():
  # apply_fast swaps in convolutions with precomputed backward kernels and
  # phase-decomposed transposed convs (layers with >= 16 output features):
  # same values and gradients as the flax modules.
  config = configs.base_config("anogan")
  config.model.nz, config.model.base_features = NZ, 16
  shape = (16, 16, 3)
  nets = anogan.Networks(config, shape)
  state = jax.jit(anogan.make(config, shape).init)(jax.random.key(0), jnp.zeros((2,) + shape))
  fast_g, fast_f = anogan.search_fns(nets, state, "penultimate")
  params, stats = state["params"], state["batch_stats"]

  def plain_g(z):
    return nets.generate(params["g"], stats["g"], z, train=False)[0]

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


# Inside the search loop phases are used over inputs up to 4x4 only: size 4
# takes them in the forward pass of the transposed conv, size 8 does not.
@pytest.mark.parametrize("size", [4, 8])
def test_conv_with_backward_kernel_gradients(size):
  x = jax.random.normal(jax.random.key(0), (2, size, size, 16))
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


@pytest.mark.parametrize("transpose,size,features,strides,padding,rewritten", [
    (True, 4, 32, (2, 2), "SAME", True),  # By phases (>= 16 output features).
    (True, 8, 1, (2, 2), "SAME", False),  # Left to XLA (one output feature).
    (True, 1, 32, (1, 1), "VALID", True),  # DCGAN's first layer: a matmul.
    (False, 4, 1, (1, 1), "VALID", True),  # DCGAN's last layer: a matmul.
    (False, 4, 32, (2, 2), ((1, 1), (1, 1)), True),  # By space-to-depth (tiny map).
    (False, 2, 16, (2, 2), ((1, 1), (1, 1)), True),  # U-Net bottleneck.
    (False, 8, 16, (2, 2), ((1, 1), (1, 1)), False),  # Left to XLA (larger map).
    (False, 3, 8, (2, 2), ((1, 1), (1, 1)), False),  # Odd padded size: falls back to XLA.
])
def test_lowered_convs_match_flax_values_and_gradients(transpose, size, features, strides,
                                                       padding, rewritten):
  cls = nn.ConvTranspose if transpose else nn.Conv
  module = cls(features, (4, 4), strides=strides, padding=padding)
  x = jax.random.normal(jax.random.key(0), (3, size, size, 5))
  variables = module.init(jax.random.key(1), x)

  def loss(variables, x):
    return jnp.sum(jnp.sin(module.apply(variables, x)))

  plain_fn = jax.value_and_grad(loss, argnums=(0, 1))
  lowered_fn = fast_conv.lowered(plain_fn)
  plain, lowered = jax.jit(plain_fn)(variables, x), jax.jit(lowered_fn)(variables, x)
  programs = [str(jax.make_jaxpr(fn)(variables, x)) for fn in (plain_fn, lowered_fn)]
  assert (programs[0] != programs[1]) == rewritten
  for got, expected in zip(jax.tree.leaves(lowered), jax.tree.leaves(plain)):
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("method", ["ganomaly", "skip_ganomaly", "anogan"])
def test_conv_lowering_changes_no_train_step(method):
  # Same losses and Adam moments with config.conv_lowering "cpu" and "xla".
  shape = (16, 16, 1)
  x = jax.random.uniform(jax.random.key(0), (4, *shape), minval=-1.0, maxval=1.0)
  results = {}
  for lowering in ("cpu", "xla"):
    config = configs.base_config(method)
    config.conv_lowering = lowering
    config.model.nz, config.model.base_features = NZ, 8
    m = methods.make(config, shape)
    state = jax.jit(m.init)(jax.random.key(1), x)
    results[lowering] = jax.jit(m.train_step)(state, x, jax.random.key(2))
  (cpu_state, cpu_metrics), (xla_state, xla_metrics) = results["cpu"], results["xla"]
  for name in xla_metrics:
    np.testing.assert_allclose(cpu_metrics[name], xla_metrics[name], rtol=1e-4, atol=1e-6)
  # Adam's first update is lr * sign(gradient): compare the moments instead.
  for got, expected in zip(jax.tree.leaves(cpu_state["opt_state"]),
                           jax.tree.leaves(xla_state["opt_state"])):
    np.testing.assert_allclose(got, expected, rtol=2e-3, atol=1e-7)


def test_conv_lowering_setting_is_checked():
  with pytest.raises(ValueError, match="config.conv_lowering must be 'auto', 'cpu' or 'xla'"):
    fast_conv.use_lowering("fast")


@pytest.mark.parametrize("kernel,stride,padding,use_bias", [
    (3, 1, "SAME", False),  # EfficientNet's 3x3 depthwise conv.
    (5, 2, "SAME", False),  # Its strided 5x5 (TF "same": more padding after).
    (3, 2, ((1, 1), (1, 1)), True),  # Explicit padding, with a bias.
])
def test_lowered_depthwise_convs_match_flax_values_and_gradients(kernel, stride, padding,
                                                                 use_bias):
  module = nn.Conv(6, (kernel, kernel), strides=stride, padding=padding,
                   feature_group_count=6, use_bias=use_bias)
  x = jax.random.normal(jax.random.key(0), (2, 9, 9, 6))
  variables = module.init(jax.random.key(1), x)

  def loss(variables, x):
    return jnp.sum(jnp.sin(module.apply(variables, x)))

  plain_fn = jax.value_and_grad(loss, argnums=(0, 1))
  lowered_fn = fast_conv.lowered(plain_fn)
  assert "feature_group_count=6" not in str(jax.make_jaxpr(lowered_fn)(variables, x))
  plain, lowered = jax.jit(plain_fn)(variables, x), jax.jit(lowered_fn)(variables, x)
  for got, expected in zip(jax.tree.leaves(lowered), jax.tree.leaves(plain)):
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
