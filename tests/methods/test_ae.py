"""Tests of `methods.ae`: the AE / SSIM-AE train step and scoring."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganad_jax import methods
from configs import test as test_config


def _changed(before, after):
  return jax.tree.map(lambda a, b: bool(jnp.any(a != b)), before, after)


@pytest.mark.parametrize("method,shape", [("ae", (16, 16, 1)), ("ssim_ae", (16, 16, 3)),
                                          ("ae", (7,))])
def test_train_step_updates_every_param_and_lowers_loss(method, shape):
  config = test_config.get_config(f"method={method}")
  config.optim.lr = 1e-2  # Only to see the loss fall within a few steps.
  m = methods.make(config, shape)
  batch = jax.random.uniform(jax.random.key(0), (8, *shape), minval=-1.0, maxval=1.0)
  state = jax.jit(m.init)(jax.random.key(1), batch)
  step = jax.jit(m.train_step)
  new_state, metrics = step(state, batch, jax.random.key(2))
  assert np.isfinite(float(metrics["loss"]))
  assert all(jax.tree.leaves(_changed(state["params"], new_state["params"])))
  assert int(new_state["step"]) == 1
  first = float(metrics["loss"])
  for i in range(30):
    new_state, metrics = step(new_state, batch, jax.random.key(i))
  assert float(metrics["loss"]) < 0.9 * first


def test_score_is_eval_mode_and_per_sample():
  config = test_config.get_config("method=ae")
  m = methods.make(config, (16, 16, 1))
  batch = jax.random.uniform(jax.random.key(0), (8, 16, 16, 1), minval=-1.0, maxval=1.0)
  state = jax.jit(m.init)(jax.random.key(1), batch)
  state, _ = jax.jit(m.train_step)(state, batch, jax.random.key(2))  # Non-trivial batch stats.
  score = jax.jit(m.score)
  full = score(state, batch, jax.random.key(3))
  single = score(state, batch[3:4], jax.random.key(3))
  np.testing.assert_allclose(full["score"][3], single["score"][0], rtol=1e-5)
  assert full["map"].shape == (8, 16, 16)
  np.testing.assert_allclose(full["map"].mean(axis=(1, 2)), full["score"], rtol=1e-5)
