"""Tests of `methods.gan` (reconstruction GAN, D re-init) through GANomaly and Skip-GANomaly."""

import functools
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganad_jax import methods
from ganad_jax import train
from ganad_jax.methods import gan
from ganad_jax.methods import ganomaly
from ganad_jax.methods import skip_ganomaly
from configs import test as test_config
import helpers

IMAGE = (16, 16, 1)
VECTOR = (10,)
KEY = jax.random.key(0)


def _changed(before, after):
  return jax.tree_util.tree_leaves(
      jax.tree_util.tree_map(lambda a, b: bool(jnp.any(a != b)), before, after))


def _with_hparams(state, **values):
  hp = dict(state["hparams"])
  hp.update({k: jnp.asarray(v, jnp.float32) for k, v in values.items()})
  return {**state, "hparams": hp}


@pytest.mark.parametrize("case", list(helpers.GAN_CASES))
def test_train_step_is_finite_and_updates_both_nets(case):
  config, shape, init, train_step, _ = helpers.jitted_gan(case)
  x = helpers.gan_batch(shape)
  state = init(KEY, x)
  assert set(state["hparams"]) == set(
      ganomaly.WEIGHTS if config.method == "ganomaly" else skip_ganomaly.HPARAMS)
  new_state, metrics = train_step(state, x, jax.random.key(1))
  assert int(new_state["step"]) == 1
  for name, value in metrics.items():
    assert np.isfinite(float(value)), name
  for net in ("g", "d"):
    if case == "ganomaly_vector_reinit" and net == "d":  # A fresh D: new kernels, zero biases.
      assert helpers.kernels_changed(state["params"][net], new_state["params"][net])
    else:
      assert all(_changed(state["params"][net], new_state["params"][net])), net
  if len(shape) == 3:  # BatchNorm running statistics move in train mode.
    for net in ("g", "d"):
      assert all(_changed(state["batch_stats"][net], new_state["batch_stats"][net])), net
  if case == "ganomaly_vector_reinit":
    assert float(metrics["d_reinit"]) == 1.0
  else:  # Threshold 0: no re-init code at all.
    assert "d_reinit" not in metrics
  # The state round-trips through a second step.
  _, metrics = train_step(new_state, x, jax.random.key(2))
  assert np.isfinite(float(metrics["loss"]))


def test_forced_d_reinit_draws_d_from_the_step_key():
  config, shape, init, train_step, _ = helpers.jitted_gan("ganomaly_vector_reinit")
  x = helpers.gan_batch(shape)
  state = init(KEY, x)
  step_key = jax.random.key(7)
  new_state, metrics = train_step(state, x, step_key)
  assert float(metrics["d_reinit"]) == 1.0
  init_d = functools.partial(gan.init_discriminator, ganomaly.discriminator(config, shape))
  fresh = jax.jit(init_d)(step_key, x)["params"]
  # Two programs (D re-drawn inside the fused train step vs init_d alone): XLA
  # may fuse the init's scale-and-shift differently, so equal to float32
  # rounding (rtol 1e-6 ~ 8 ulps), not bit for bit; another key differs by O(1).
  jax.tree_util.tree_map(functools.partial(np.testing.assert_allclose, rtol=1e-6, atol=1e-7),
                         new_state["params"]["d"], fresh)
  assert helpers.kernels_changed(state["params"]["d"], fresh)


@pytest.mark.parametrize("case,weights", [
    ("ganomaly_image", {"w_adv": 0.0, "w_con": 3.0, "w_enc": 7.0}),
    ("skip_patch", {"w_adv": 0.0, "w_con": 3.0, "w_lat": 7.0})])
def test_loss_weights_are_read_from_state(case, weights):
  _, shape, init, train_step, _ = helpers.jitted_gan(case)
  x = helpers.gan_batch(shape)
  state = init(KEY, x)
  terms = ("g_adv", "g_con", "g_enc" if "w_enc" in weights else "g_lat")
  results = []
  for st in (state, _with_hparams(state, **weights)):
    new_state, metrics = train_step(st, x, jax.random.key(1))
    expected = sum(float(st["hparams"][w]) * float(metrics[t]) for w, t in zip(weights, terms))
    np.testing.assert_allclose(float(metrics["g_loss"]), expected, rtol=1e-5)
    results.append(new_state)
  # Adam's first step is about lr * sign(grad): other weights flip some signs.
  assert any(_changed(results[0]["params"]["g"], results[1]["params"]["g"]))
  # The config's weights are only the initial values.
  assert float(results[1]["hparams"]["w_con"]) == 3.0


@pytest.mark.parametrize("case", list(helpers.GAN_CASES))
def test_train_step_vmaps_over_a_grid_of_states(case):
  # Traced only (a compile would cost seconds): every leaf, hparams included, gets the grid axis.
  _, shape, init, train_step, score = helpers.jitted_gan(case)
  x = helpers.gan_batch(shape)
  state = jax.eval_shape(init, KEY, x)
  grid = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct((3,) + a.shape, a.dtype), state)
  new_grid, metrics = jax.eval_shape(jax.vmap(train_step, in_axes=(0, None, None)), grid, x, KEY)
  assert jax.tree_util.tree_structure(new_grid) == jax.tree_util.tree_structure(state)
  assert all(a.shape[0] == 3 for a in jax.tree_util.tree_leaves(new_grid))
  assert metrics["g_loss"].shape == (3,)
  out = jax.eval_shape(jax.vmap(score, in_axes=(0, None, None)), grid, x, KEY)
  assert out["score"].shape == (3, 8)


@pytest.mark.parametrize("case", ["ganomaly_image", "skip_patch"])
def test_score_is_eval_mode_and_per_sample(case):
  config, shape, init, train_step, score = helpers.jitted_gan(case)
  state = init(KEY, helpers.gan_batch(shape))
  # Non-trivial batch stats.
  state, _ = train_step(state, helpers.gan_batch(shape), jax.random.key(1))
  x = helpers.gan_batch(shape, n=6, seed=3)
  out = score(state, x, jax.random.key(2))
  assert out["score"].shape == out["score_recon"].shape == (6,)
  assert out["map"].shape == (6,) + shape[:2]
  assert out["recon"].shape == (6,) + shape
  for name, value in out.items():
    assert np.all(np.isfinite(value)), name
  np.testing.assert_allclose(out["map"].mean(axis=(1, 2)), out["score_recon"], rtol=1e-5)
  if config.method == "skip_ganomaly":
    np.testing.assert_allclose(out["score"], 0.9 * out["score_recon"] + 0.1 * out["score_feature"],
                               rtol=1e-5)
    relam = score(_with_hparams(state, score_lambda=0.5), x, jax.random.key(2))
    np.testing.assert_allclose(relam["score"], 0.5 * (out["score_recon"] + out["score_feature"]),
                               rtol=1e-5)
  # Eval-mode BatchNorm: a sample's score ignores the order and the rest of the batch.
  perm = np.array([5, 3, 0, 1, 4, 2])
  shuffled = score(state, x[perm], jax.random.key(2))
  np.testing.assert_allclose(shuffled["score"], out["score"][perm], rtol=1e-5)
  other = x.at[1:].set(helpers.gan_batch(shape, n=5, seed=9))
  np.testing.assert_allclose(score(state, other, jax.random.key(2))["score"][0],
                             out["score"][0], rtol=1e-5)


def test_rejects_what_it_cannot_do():
  with pytest.raises(ValueError, match="skip_ganomaly needs images"):
    skip_ganomaly.make(helpers.gan_config("skip_ganomaly"), VECTOR)
  for method in ("ganomaly", "skip_ganomaly"):
    with pytest.raises(ValueError, match=r"Unknown discriminator 'pacth' \(config.model"):
      methods.make(helpers.gan_config(method, discriminator="pacth"), IMAGE)
  with pytest.raises(ValueError, match="config.model.discriminator='patch' is for images"):
    ganomaly.make(helpers.gan_config("ganomaly", discriminator="patch"), VECTOR)
  config = helpers.gan_config("ganomaly")
  config.ganomaly.w_con = -1.0
  with pytest.raises(ValueError, match="config.ganomaly.w_con=-1.0"):
    ganomaly.make(config, IMAGE)
  config = helpers.gan_config("skip_ganomaly")
  config.skip_ganomaly.score_rec = "l3"
  with pytest.raises(ValueError, match="score_rec='l3'"):
    skip_ganomaly.make(config, IMAGE)
  config = helpers.gan_config("skip_ganomaly")
  config.skip_ganomaly.score_lambda = 1.5
  with pytest.raises(ValueError, match="score_lambda=1.5"):
    skip_ganomaly.make(config, IMAGE)
  with pytest.raises(ValueError, match="image_size=24"):
    skip_ganomaly.make(helpers.gan_config("skip_ganomaly"), (24, 24, 1))
  # Too small for 3 stride-2 patch layers: named at init.
  config = helpers.gan_config("ganomaly", discriminator="patch")
  config.model.patch_layers = 3
  method = ganomaly.make(config, IMAGE)
  with pytest.raises(ValueError, match="patch_layers"):
    jax.eval_shape(method.init, KEY, jnp.zeros((2,) + IMAGE))


@pytest.mark.parametrize("name,arg,method", [
    ("ganomaly_digits.py", None, "ganomaly"), ("ganomaly_digits.py", "digit=3", "ganomaly"),
    ("ganomaly_mnist.py", "digit=3", "ganomaly"),
    ("skip_ganomaly_digits.py", None, "skip_ganomaly"),
    ("test.py", "method=ganomaly", "ganomaly"),
    ("test.py", "method=skip_ganomaly", "skip_ganomaly")])
def test_experiment_configs_are_valid(name, arg, method):
  config = helpers.experiment_config(name, arg)
  assert config.method == method
  if arg == "digit=3":
    assert config.data.class_index == 3


@pytest.mark.parametrize("method", ["ganomaly", "skip_ganomaly"])
def test_train_and_evaluate_end_to_end(method, tmp_path):
  config = test_config.get_config(f"method={method}")
  results = train.train_and_evaluate(config, str(tmp_path))
  assert results["method"] == method and results["steps"] == config.train.num_steps
  expected = {"score", "score_recon"} | ({"score_feature"} if method == "skip_ganomaly" else set())
  assert set(results["metrics"]) == expected
  for name in expected:
    assert 0.0 <= results["metrics"][name]["auroc"] <= 1.0, name
  assert all(math.isfinite(v) for v in results["final_train_metrics"].values())
  assert os.path.exists(tmp_path / "results.json")
