"""Tests of `methods.egbad`: train step and EMA, scoring, the joint discriminator, errors."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganad_jax import latent_search
from ganad_jax import methods
from ganad_jax.methods import egbad
import helpers

IMAGE = (16, 16, 1)
VECTOR = (10,)


@pytest.mark.parametrize("shape", [IMAGE, VECTOR])
def test_egbad_train_step_updates_every_net_and_its_ema(shape):
  state, new_state, metrics = helpers.one_step("egbad", shape)
  assert int(new_state["step"]) == 1
  for name in ("loss", "d_loss", "g_loss", "e_loss", "d_real", "d_fake"):
    assert np.isfinite(float(metrics[name])), name
  np.testing.assert_allclose(float(metrics["loss"]), float(metrics["d_loss"] + metrics["g_loss"]
                                                           + metrics["e_loss"]), rtol=1e-6)
  for net in ("g", "e", "d"):
    assert helpers.all_changed(state["params"][net], new_state["params"][net]), net
  if shape == IMAGE:
    for net in ("g", "e", "d"):
      assert helpers.all_changed(state["batch_stats"][net], new_state["batch_stats"][net]), net
  # The EMA starts at the params and moves a fraction 1 - decay towards the new ones, with
  # decay = min(ema_decay, (1 + t) / (10 + t)) at step t (TF's num_updates rule): 0.1 at t = 0.
  assert float(state["hparams"]["ema_decay"]) == pytest.approx(0.999)
  for old, new, p in zip(*(helpers.leaves(t) for t in
                           (state["ema"], new_state["ema"], new_state["params"]))):
    np.testing.assert_allclose(new, 0.1 * old + 0.9 * p, rtol=1e-5, atol=1e-7)
    assert np.all(np.abs(new - p) <= np.abs(old - p) + 1e-7)
  # The decay is read from the state (vmappable), not baked in at trace time; late in a run
  # (t = 1000: (1 + t) / (10 + t) = 0.991) the configured decay is the smaller one.
  _, _, train_step, _ = helpers.compiled("egbad", shape)
  state_half = dict(state, step=jnp.int32(1000),
                    hparams=dict(state["hparams"], ema_decay=jnp.float32(0.5)))
  half, _ = train_step(state_half, helpers.batch(shape), jax.random.key(1))
  for old, new, p in zip(*(helpers.leaves(t) for t in (state["ema"], half["ema"], half["params"]))):
    np.testing.assert_allclose(new, 0.5 * old + 0.5 * p, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("shape", [IMAGE, VECTOR])
def test_egbad_score(shape):
  m, _, _, score = helpers.compiled("egbad", shape)
  _, state, _ = helpers.one_step("egbad", shape)
  x = helpers.batch(shape, seed=3)
  names = ("score", "score_recon", "score_feature") + (("score_search",) if shape == VECTOR
                                                       else ())
  out = helpers.assert_batch_independent(score, state, x, names)
  assert out["recon"].shape == x.shape
  assert ("map" in out) == (shape == IMAGE)
  assert ("score_search" in out) == (shape == VECTOR)
  for name in names:
    assert out[name].shape == (8,) and np.all(np.isfinite(out[name])), name
  if shape == IMAGE:
    np.testing.assert_allclose(out["map"].reshape(8, -1).sum(1), out["score_recon"], rtol=1e-5)
  np.testing.assert_allclose(out["score"], 0.9 * out["score_recon"] + 0.1 * out["score_feature"],
                             rtol=1e-5)
  # The score uses the EMA params: scoring with the live params differs.
  live = score(dict(state, ema=state["params"]), x, jax.random.key(2))
  assert np.any(live["score"] != out["score"])
  # The weight w is read from the state.
  state_w = dict(state, hparams=dict(state["hparams"], feature_weight=jnp.float32(0.5)))
  out_w = score(state_w, x, jax.random.key(2))
  np.testing.assert_allclose(out_w["score"], 0.5 * out["score_recon"] + 0.5 * out["score_feature"],
                             rtol=1e-5)
  # The search's closures run the EMA nets (through fast_conv for images): at
  # z = E(x) with lam = w their loss is the EGBAD score but for D's features,
  # which see (x, E(x)) and (G(z), E(G(z))) instead of (G(z), E(x)).
  search_cfg = helpers.method_config("egbad").anogan.search
  nets = egbad.Networks(helpers.method_config("egbad"), shape)

  @jax.jit
  def closures(state, x):
    generate_fn, feature_fn, encode = egbad.search_fns(nets, state, search_cfg.feature_layer)
    z = encode(x)
    ema_z, _ = nets.encode(state["ema"]["e"], state["batch_stats"]["e"], x, train=False)
    _, feats, _ = nets.discriminate(state["ema"]["d"], state["batch_stats"]["d"], x, ema_z,
                                    train=False)
    return (generate_fn(z), feature_fn(x), feats["penultimate"],
            latent_search.anomaly_loss(generate_fn, feature_fn, x, z, search_cfg.lam))

  recon, features, expected_features, at_encoder = closures(state, x)
  np.testing.assert_allclose(recon, out["recon"], rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(features, expected_features, rtol=1e-4, atol=1e-5)
  if shape == VECTOR:
    # The warm-started search starts at E(x) and keeps its best iterate: it
    # never scores worse than the AnoGAN loss at z = E(x).
    assert np.all(out["score_search"] <= at_encoder * (1 + 1e-5))


def test_egbad_joint_discriminator_features():
  nets = egbad.Networks(helpers.method_config("egbad"), IMAGE)
  _, state, _ = helpers.one_step("egbad", IMAGE)
  z = jnp.zeros((3, 4))
  logit, feats, _ = nets.discriminate(state["params"]["d"], state["batch_stats"]["d"],
                                      helpers.batch(IMAGE, n=3), z, train=False)
  assert logit.shape == (3,)
  assert feats["penultimate"].shape == (3, 8) and feats["z"].shape == (3, 8)
  assert feats["block0"].shape == (3, 8, 8, 4) and feats["block1"].shape == (3, 4, 4, 8)


def test_egbad_rejects_bad_config():
  with pytest.raises(ValueError, match="feature_weight"):
    methods.make(helpers.method_config("egbad", egbad__feature_weight=1.5), VECTOR)
  with pytest.raises(ValueError, match="search_steps"):
    methods.make(helpers.method_config("egbad", egbad__search_steps=-1), VECTOR)
  with pytest.raises(ValueError, match="square"):
    methods.make(helpers.method_config("egbad"), (16, 8, 1))
  m = methods.make(helpers.method_config("egbad", egbad__feature_layer="block7"), VECTOR)
  x = jnp.zeros((2,) + VECTOR)
  state = jax.eval_shape(m.init, jax.random.key(0), x)
  with pytest.raises(ValueError, match="egbad.feature_layer"):
    jax.eval_shape(m.score, state, x, jax.random.key(0))


@pytest.mark.parametrize("name", ["egbad_digits.py"])
def test_experiment_configs_are_valid(name):
  assert helpers.experiment_config(name).method == "egbad"


def test_egbad_reference_settings_step_and_constant_ema():
  # EGBAD's own MNIST settings (configs/egbad_mnist.py) on a small image: its nets,
  # dropout in D, and the EMA with a constant decay from the initial weights.
  config = helpers.method_config("egbad", egbad__nets="zenati", egbad__d_dropout=0.5,
                                 egbad__d_negative_slope=0.1, egbad__ema_warmup=False)
  m = methods.make(config, IMAGE)
  x = helpers.batch(IMAGE)
  state = jax.jit(m.init)(jax.random.key(0), x)
  step = jax.jit(m.train_step)
  new_state, metrics = step(state, x, jax.random.key(1))
  for name in ("d_loss", "g_loss", "e_loss"):
    assert np.isfinite(float(metrics[name])), name
  for net in ("g", "e", "d"):
    assert helpers.all_changed(state["params"][net], new_state["params"][net]), net
  for old, new, p in zip(*(helpers.leaves(t) for t in
                           (state["ema"], new_state["ema"], new_state["params"]))):
    np.testing.assert_allclose(new, 0.999 * old + 0.001 * p, rtol=1e-5, atol=1e-7)
  # The step key draws D's dropout masks: the same key replays the step, another differs.
  again, _ = step(state, x, jax.random.key(1))
  other, _ = step(state, x, jax.random.key(2))
  d_leaf = lambda s: helpers.leaves(s["params"]["d"])[0]
  np.testing.assert_array_equal(d_leaf(again), d_leaf(new_state))
  assert np.any(d_leaf(other) != d_leaf(new_state))
  out = jax.jit(m.score)(new_state, x, jax.random.key(3))
  assert out["recon"].shape == x.shape and np.all(np.isfinite(out["score"]))


def test_egbad_mnist_config_builds_the_reference_nets():
  config = helpers.experiment_config("egbad_mnist.py", "digit=3")
  assert config.data.class_index == 3
  m = methods.make(config, (32, 32, 1))
  state = jax.eval_shape(m.init, jax.random.key(0), jnp.zeros((2, 32, 32, 1)))
  assert state["params"]["e"]["dense_out"]["kernel"].shape == (128 * 8 * 8, 200)
  assert set(state["params"]["d"]) >= {"conv0", "conv1", "bn1", "z_dense", "joint_dense"}
  reference = (config.optim.lr, config.egbad.ema_warmup, config.train.num_steps)
  short = helpers.experiment_config("egbad_mnist.py", "budget=short")
  assert reference == (1e-5, False, 0)
  assert (short.optim.lr, short.egbad.ema_warmup, short.train.num_steps) == (2e-4, True, 1000)
  with pytest.raises(ValueError, match="budget must be"):
    helpers.experiment_config("egbad_mnist.py", "budget=long")


def test_egbad_rejects_bad_reference_options():
  with pytest.raises(ValueError, match="egbad.nets"):
    methods.make(helpers.method_config("egbad", egbad__nets="resnet"), IMAGE)
  with pytest.raises(ValueError, match="takes images"):
    methods.make(helpers.method_config("egbad", egbad__nets="zenati"), VECTOR)
  with pytest.raises(ValueError, match="d_dropout"):
    methods.make(helpers.method_config("egbad", egbad__d_dropout=1.0), IMAGE)
