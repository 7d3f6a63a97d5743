"""Tests of the method interface (`methods.base`, `methods.make`): names, feature nets, bfloat16."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganad_jax import configs
from ganad_jax import methods
from configs import test as test_config
import helpers


def test_every_method_registers_its_config():
  assert methods.NAMES == configs.METHOD_NAMES  # configs/methods/<name>.py for each.


def test_unknown_method_is_named():
  config = test_config.get_config("method=ae")
  config.method = "anogann"
  with pytest.raises(ValueError, match="Unknown method 'anogann'"):
    methods.make(config, (16, 16, 1))


IMAGE = (16, 16, 1)
VECTOR = (10,)


@pytest.mark.parametrize("method,nets", [
    ("ae", {"encoder"}), ("ssim_ae", {"encoder"}), ("vae", {"encoder"}),
    ("anogan", {"discriminator"}), ("egbad", {"encoder", "discriminator"}),
    ("ganomaly", None), ("gaussian", None)])
def test_methods_export_their_feature_nets(method, nets):
  # What features='workdir' reads: each net's variables of a state, and its
  # eval-mode (output, features) (shapes only: nothing compiled).
  m = methods.make(helpers.method_config(method), IMAGE)
  if nets is None:
    assert m.features is None
    return
  assert set(m.features) == nets
  x = jnp.zeros((2,) + IMAGE)
  state = jax.eval_shape(m.init, jax.random.key(0), x)
  for name, net in m.features.items():
    out, feats = jax.eval_shape(net.apply, net.select(state), x)
    assert out.shape[0] == 2 and feats["penultimate"].shape[0] == 2, name


OTHER_METHODS = sorted({"ganomaly", "skip_ganomaly", "egbad", "vae"} & set(methods.NAMES))


@pytest.mark.parametrize("method", ["ae", "anogan", *OTHER_METHODS])
def test_bfloat16_computes_in_bfloat16_with_float32_state_and_losses(method):
  config = test_config.get_config(f"method={method}")
  config.compute_dtype = "bfloat16"
  if "anogan" in config:  # AnoGAN's and EGBAD's latent search.
    config.anogan.search.steps = 2
  m = methods.make(config, (16, 16, 1))
  x = jax.random.uniform(jax.random.key(0), (8, 16, 16, 1), minval=-1.0, maxval=1.0)

  def step_and_score(key, x):
    state, metrics = m.train_step(m.init(key, x), x, key)
    return state, metrics, m.score(state, x, key)

  state, metrics, outputs = jax.eval_shape(step_and_score, jax.random.key(1), x)
  assert {leaf.dtype for leaf in jax.tree.leaves(state)} <= {jnp.dtype("float32"),
                                                             jnp.dtype("int32")}
  assert metrics["loss"].dtype == jnp.float32 and outputs["score"].dtype == jnp.float32
  text = str(jax.make_jaxpr(m.train_step)(state, x, jax.random.key(2)))
  assert "conv_general_dilated" in text and "bf16[" in text  # The convolutions run in bfloat16.
  assert "bf16[" in str(jax.make_jaxpr(m.score)(state, x, jax.random.key(2)))  # So does scoring.
  if method in ("ae", "anogan"):  # Run them: finite after a step.
    state, metrics = jax.jit(lambda k, x: m.train_step(m.init(k, x), x, k))(jax.random.key(1), x)
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(state)
               if leaf.dtype == jnp.float32)
    assert np.isfinite(float(metrics["loss"]))
