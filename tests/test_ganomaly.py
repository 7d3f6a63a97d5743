"""Tests of GANomaly and Skip-GANomaly: nets, train step, hparams, scoring, D re-init, e2e."""

import functools
import importlib.util
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganad_jax import configs
from ganad_jax import methods
from ganad_jax import train
from ganad_jax.methods import gan
from ganad_jax.methods import ganomaly
from ganad_jax.methods import skip_ganomaly
from ganad_jax.models import patch
from ganad_jax.models import unet
from configs import test as test_config

IMAGE = (16, 16, 1)
SMALL_IMAGE = (8, 8, 1)  # Skip-GANomaly with the patch discriminator only.
VECTOR = (10,)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY = jax.random.key(0)


def _config(method, discriminator="dcgan", reinit=1e-5, patch_layers=2):
  config = configs.base_config()
  config.method = method
  config.model.nz, config.model.base_features, config.model.mlp_widths = 4, 4, (8, 4)
  config.model.discriminator, config.model.patch_layers = discriminator, patch_layers
  config[method].reinit_d_below = reinit
  return config


# Three compiled variants cover the code paths (compiles dominate the runtime):
# GANomaly on images (DCGAN D), GANomaly on vectors with D re-init forced at
# every step, Skip-GANomaly on 8x8 images (a 3-level U-Net) with the patch
# discriminator (1 stride-2 layer: 2x2 patches). The end-to-end runs compile
# the default re-init threshold on images.
CASES = {"ganomaly_image": ("ganomaly", IMAGE, "dcgan", 0.0, 2),
         "ganomaly_vector_reinit": ("ganomaly", VECTOR, "dcgan", 1e9, 2),
         "skip_patch": ("skip_ganomaly", SMALL_IMAGE, "patch", 0.0, 1)}


@functools.lru_cache(maxsize=None)
def _jitted(case):
  method, shape, discriminator, reinit, patch_layers = CASES[case]
  config = _config(method, discriminator, reinit, patch_layers)
  m = methods.make(config, shape)
  return config, shape, jax.jit(m.init), jax.jit(m.train_step), jax.jit(m.score)


def _batch(shape, n=8, seed=0):
  return jax.random.uniform(jax.random.key(seed), (n,) + shape, minval=-1.0, maxval=1.0)


def _changed(before, after):
  return jax.tree_util.tree_leaves(
      jax.tree_util.tree_map(lambda a, b: bool(jnp.any(a != b)), before, after))


def _kernels_changed(before, after):
  """Whether every kernel changed (biases start at zero, and a fresh D has zero biases too)."""
  flat = jax.tree_util.tree_flatten_with_path(jax.tree_util.tree_map(
      lambda a, b: bool(jnp.any(a != b)), before, after))[0]
  kernels = [v for path, v in flat if "kernel" in jax.tree_util.keystr(path)]
  return bool(kernels) and all(kernels)


def _with_hparams(state, **values):
  hp = dict(state["hparams"])
  hp.update({k: jnp.asarray(v, jnp.float32) for k, v in values.items()})
  return {**state, "hparams": hp}


# --- Level 1: network shapes (abstract evaluation, nothing compiled). --------


@pytest.mark.parametrize("shape", [(16, 16, 1), (32, 32, 3), VECTOR])
def test_ganomaly_generator_shapes(shape):
  gen = ganomaly.Generator(shape, nz=5, base_features=4, mlp_widths=(8, 4))
  x = jnp.zeros((2,) + shape)
  variables = jax.eval_shape(functools.partial(gen.init, train=False), KEY, x)
  x_hat, z, z_hat = jax.eval_shape(functools.partial(gen.apply, train=False), variables, x)
  assert x_hat.shape == x.shape
  assert z.shape == z_hat.shape == (2, 5)
  # Two separate encoders, one decoder.
  assert set(variables["params"]) == {"encoder1", "decoder", "encoder2"}


@pytest.mark.parametrize("size,channels", [(16, 1), (32, 3)])
def test_unet_goes_down_to_1x1_with_skips(size, channels):
  net = unet.UNet(channels, base_features=4)
  x = jnp.zeros((2, size, size, channels))
  variables = jax.eval_shape(functools.partial(net.init, train=False), KEY, x)
  out, state = jax.eval_shape(functools.partial(
      net.apply, train=False, capture_intermediates=True, mutable=["intermediates"]), variables, x)
  assert out.shape == (2, size, size, channels)
  levels = int(math.log2(size))
  assert unet.num_levels(size) == levels
  inter = state["intermediates"]
  downs = sorted(k for k in variables["params"] if k.startswith("down") and "bn" not in k)
  assert len(downs) == levels
  for i in range(levels):
    side = size // 2**(i + 1)
    assert inter[f"down{i}"]["__call__"][0].shape == (2, side, side, 4 * min(2**i, 8))
  # The up-sampling after level i sees its input concatenated with the skip (2x channels).
  for i in range(1, levels - 1):
    assert variables["params"][f"up{i}"]["kernel"].shape[2] == 2 * 4 * min(2**i, 8)


@pytest.mark.parametrize("size,layers,patches", [(16, 2, 4), (32, 2, 36), (32, 3, 4),
                                                 (64, 3, 36)])
def test_patch_discriminator_logit_count(size, layers, patches):
  d = patch.PatchDiscriminator(base_features=4, num_layers=layers)
  x = jnp.zeros((3, size, size, 1))
  variables = jax.eval_shape(functools.partial(d.init, train=False), KEY, x)
  logits, feats = jax.eval_shape(functools.partial(d.apply, train=False), variables, x)
  assert patch.num_patches(size, layers) == patches
  assert logits.shape == (3, patches)
  side = size // 2**layers - 1
  assert feats["penultimate"].shape == (3, side, side, 4 * min(2**layers, 8))


def test_patch_logits_see_only_their_patch():
  # 32x32, 1 stride-2 layer: 14x14 logits with a 16x16 receptive field.
  d = patch.PatchDiscriminator(base_features=2, num_layers=1)
  x = jnp.repeat(_batch((32, 32, 1), n=1), 2, axis=0)
  variables = jax.jit(functools.partial(d.init, train=False))(KEY, x)
  apply = jax.jit(functools.partial(d.apply, train=False))
  logits, _ = apply(variables, x.at[1, :2, :2, 0].add(1.0))
  same, moved = (np.asarray(row, np.float64).reshape(14, 14) for row in logits)
  # Two rows of one batch need not agree bit for bit (XLA:CPU may sum one
  # row's products in another order; the far corner differed in its last bits
  # on some CPUs). "Unchanged" is within 1e-3 of the largest logit (~1e-6
  # here): thousands of float32 ulps of it, while a dot product over the
  # 16x16 receptive field rounds by at most a few hundred; the corner patch
  # moves ~80x more than that.
  atol = 1e-3 * np.abs(same).max()
  assert abs(moved[0, 0] - same[0, 0]) > 10 * atol
  np.testing.assert_allclose(moved[8:, :], same[8:, :], rtol=0, atol=atol)
  np.testing.assert_allclose(moved[:, 8:], same[:, 8:], rtol=0, atol=atol)


# --- Level 2: train step, hparams, scoring. ----------------------------------


@pytest.mark.parametrize("case", list(CASES))
def test_train_step_is_finite_and_updates_both_nets(case):
  config, shape, init, train_step, _ = _jitted(case)
  x = _batch(shape)
  state = init(KEY, x)
  assert set(state["hparams"]) == set(
      ganomaly.WEIGHTS if config.method == "ganomaly" else skip_ganomaly.HPARAMS)
  new_state, metrics = train_step(state, x, jax.random.key(1))
  assert int(new_state["step"]) == 1
  for name, value in metrics.items():
    assert np.isfinite(float(value)), name
  for net in ("g", "d"):
    if case == "ganomaly_vector_reinit" and net == "d":  # A fresh D: new kernels, zero biases.
      assert _kernels_changed(state["params"][net], new_state["params"][net])
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


def test_ganomaly_lowers_the_reconstruction_loss():
  _, shape, init, train_step, _ = _jitted("ganomaly_image")
  x = _batch(shape)
  state = init(KEY, x)
  state = {**state, "opt_state": jax.tree_util.tree_map(lambda a: a, state["opt_state"])}
  for net in ("g", "d"):  # Only to see the loss fall within a few steps.
    lr = state["opt_state"][net].hyperparams["learning_rate"]
    state["opt_state"][net].hyperparams["learning_rate"] = jnp.full_like(lr, 2e-3)
  state, first = train_step(state, x, jax.random.key(1))
  for i in range(15):
    state, metrics = train_step(state, x, jax.random.key(i))
  assert float(metrics["g_con"]) < 0.9 * float(first["g_con"])


def test_forced_d_reinit_draws_d_from_the_step_key():
  config, shape, init, train_step, _ = _jitted("ganomaly_vector_reinit")
  x = _batch(shape)
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
  assert _kernels_changed(state["params"]["d"], fresh)


@pytest.mark.parametrize("case,weights", [
    ("ganomaly_image", {"w_adv": 0.0, "w_con": 3.0, "w_enc": 7.0}),
    ("skip_patch", {"w_adv": 0.0, "w_con": 3.0, "w_lat": 7.0})])
def test_loss_weights_are_read_from_state(case, weights):
  _, shape, init, train_step, _ = _jitted(case)
  x = _batch(shape)
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


@pytest.mark.parametrize("case", list(CASES))
def test_train_step_vmaps_over_a_grid_of_states(case):
  # Traced only (a compile would cost seconds): every leaf, hparams included, gets the grid axis.
  _, shape, init, train_step, score = _jitted(case)
  x = _batch(shape)
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
  config, shape, init, train_step, score = _jitted(case)
  state = init(KEY, _batch(shape))
  state, _ = train_step(state, _batch(shape), jax.random.key(1))  # Non-trivial batch stats.
  x = _batch(shape, n=6, seed=3)
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
  other = x.at[1:].set(_batch(shape, n=5, seed=9))
  np.testing.assert_allclose(score(state, other, jax.random.key(2))["score"][0],
                             out["score"][0], rtol=1e-5)


def test_ganomaly_scores_vectors_by_latent_distance():
  _, shape, init, _, score = _jitted("ganomaly_vector_reinit")
  x = _batch(shape)
  out = score(init(KEY, x), x, KEY)
  assert out["score"].shape == (8,) and out["recon"].shape == (8,) + shape
  assert "map" not in out
  assert np.all(np.asarray(out["score"]) >= 0.0)


# --- Errors and configs. -------------------------------------------------------


def test_rejects_what_it_cannot_do():
  with pytest.raises(ValueError, match="skip_ganomaly needs images"):
    skip_ganomaly.make(_config("skip_ganomaly"), VECTOR)
  for method in ("ganomaly", "skip_ganomaly"):
    with pytest.raises(ValueError, match=r"Unknown discriminator 'pacth' \(config.model"):
      methods.make(_config(method, discriminator="pacth"), IMAGE)
  with pytest.raises(ValueError, match="config.model.discriminator='patch' is for images"):
    ganomaly.make(_config("ganomaly", discriminator="patch"), VECTOR)
  config = _config("ganomaly")
  config.ganomaly.w_con = -1.0
  with pytest.raises(ValueError, match="config.ganomaly.w_con=-1.0"):
    ganomaly.make(config, IMAGE)
  config = _config("skip_ganomaly")
  config.skip_ganomaly.score_rec = "l3"
  with pytest.raises(ValueError, match="score_rec='l3'"):
    skip_ganomaly.make(config, IMAGE)
  config = _config("skip_ganomaly")
  config.skip_ganomaly.score_lambda = 1.5
  with pytest.raises(ValueError, match="score_lambda=1.5"):
    skip_ganomaly.make(config, IMAGE)
  with pytest.raises(ValueError, match="image_size=24"):
    skip_ganomaly.make(_config("skip_ganomaly"), (24, 24, 1))
  # Too small for 3 stride-2 patch layers: named at init.
  config = _config("ganomaly", discriminator="patch")
  config.model.patch_layers = 3
  method = ganomaly.make(config, IMAGE)
  with pytest.raises(ValueError, match="patch_layers"):
    jax.eval_shape(method.init, KEY, jnp.zeros((2,) + IMAGE))


def _load_config(name, arg=None):
  path = os.path.join(REPO, "configs", name)
  spec = importlib.util.spec_from_file_location(name[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg) if arg is not None else module.get_config()


@pytest.mark.parametrize("name,arg,method", [
    ("ganomaly_digits.py", None, "ganomaly"), ("ganomaly_digits.py", "digit=3", "ganomaly"),
    ("ganomaly_mnist.py", "digit=3", "ganomaly"),
    ("skip_ganomaly_digits.py", None, "skip_ganomaly"),
    ("test.py", "method=ganomaly", "ganomaly"),
    ("test.py", "method=skip_ganomaly", "skip_ganomaly")])
def test_experiment_configs_are_valid(name, arg, method):
  config = _load_config(name, arg)
  configs.validate(config)
  assert config.method == method and method in methods.NAMES
  if arg == "3":
    assert config.data.class_index == 3
  methods.make(config, (config.data.image_size, config.data.image_size, config.data.channels))


# --- Level 3: end to end on the tiny config. -----------------------------------


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
