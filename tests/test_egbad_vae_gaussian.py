"""Tests of EGBAD, the VAE and the Gaussian / Mahalanobis scorer."""

import functools
import importlib.util
import json
import os
import textwrap

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import covariance

from ganad_jax import checkpoints
from ganad_jax import configs
from ganad_jax import latent_search
from ganad_jax import methods
from ganad_jax import runner
from ganad_jax import workdir as workdir_lib
from ganad_jax.methods import egbad
from configs import test as test_config

IMAGE = (16, 16, 1)
VECTOR = (10,)


def _config(method, search_steps=0, **updates):
  config = test_config.get_config(f"method={method}")
  config.egbad.search_steps = search_steps
  config.anogan.search.lam = 0.1
  for name, value in updates.items():
    section, field = name.split("__")
    config[section][field] = value
  configs.validate(config)
  return config


@functools.lru_cache(maxsize=None)
def _compiled(method, shape):
  """(method, init, train_step, score), jitted once per (method, shape): compiles dominate."""
  # EGBAD's warm-started search is compiled for vectors only (a conv search
  # compiles slowly); its image closures are checked without the loop.
  m = methods.make(_config(method, search_steps=3 if shape == VECTOR else 0), shape)
  return m, jax.jit(m.init), jax.jit(m.train_step), jax.jit(m.score)


def _batch(shape, n=8, seed=0):
  return np.random.default_rng(seed).uniform(-1.0, 1.0, (n,) + shape).astype(np.float32)


@functools.lru_cache(maxsize=None)
def _trained(method, shape):
  """(state before, state after, metrics) of one train step on `_batch(shape)`."""
  _, init, train_step, _ = _compiled(method, shape)
  state = init(jax.random.key(0), _batch(shape))
  new_state, metrics = train_step(state, _batch(shape), jax.random.key(1))
  return state, new_state, metrics


def _leaves(tree):
  """The leaves as numpy arrays (numpy, not eager jax ops: each of those compiles)."""
  return [np.asarray(a) for a in jax.tree_util.tree_leaves(jax.device_get(tree))]


def _all_changed(before, after):
  return all(np.any(a != b) for a, b in zip(_leaves(before), _leaves(after)))


def _assert_batch_independent(score, state, x, names):
  """Eval mode: a sample's outputs depend neither on its position nor on the other samples."""
  key = jax.random.key(2)
  out = score(state, x, key)
  perm = np.array([5, 3, 0, 1, 4, 2, 7, 6])
  shuffled = score(state, x[perm], key)
  other = x.copy()
  other[1:] = _batch(x.shape[1:], n=7, seed=9)
  other = score(state, other, key)
  for name in names:
    np.testing.assert_allclose(shuffled[name], out[name][perm], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(other[name][0], out[name][0], rtol=1e-5, atol=1e-6)
  return out


# EGBAD.

@pytest.mark.parametrize("shape", [IMAGE, VECTOR])
def test_egbad_train_step_updates_every_net_and_its_ema(shape):
  state, new_state, metrics = _trained("egbad", shape)
  assert int(new_state["step"]) == 1
  for name in ("loss", "d_loss", "g_loss", "e_loss", "d_real", "d_fake"):
    assert np.isfinite(float(metrics[name])), name
  np.testing.assert_allclose(float(metrics["loss"]), float(metrics["d_loss"] + metrics["g_loss"]
                                                           + metrics["e_loss"]), rtol=1e-6)
  for net in ("g", "e", "d"):
    assert _all_changed(state["params"][net], new_state["params"][net]), net
  if shape == IMAGE:
    for net in ("g", "e", "d"):
      assert _all_changed(state["batch_stats"][net], new_state["batch_stats"][net]), net
  # The EMA starts at the params and moves a fraction 1 - decay towards the new ones, with
  # decay = min(ema_decay, (1 + t) / (10 + t)) at step t (TF's num_updates rule): 0.1 at t = 0.
  assert float(state["hparams"]["ema_decay"]) == pytest.approx(0.999)
  for old, new, p in zip(*(_leaves(t) for t in
                           (state["ema"], new_state["ema"], new_state["params"]))):
    np.testing.assert_allclose(new, 0.1 * old + 0.9 * p, rtol=1e-5, atol=1e-7)
    assert np.all(np.abs(new - p) <= np.abs(old - p) + 1e-7)
  # The decay is read from the state (vmappable), not baked in at trace time; late in a run
  # (t = 1000: (1 + t) / (10 + t) = 0.991) the configured decay is the smaller one.
  _, _, train_step, _ = _compiled("egbad", shape)
  state_half = dict(state, step=jnp.int32(1000),
                    hparams=dict(state["hparams"], ema_decay=jnp.float32(0.5)))
  half, _ = train_step(state_half, _batch(shape), jax.random.key(1))
  for old, new, p in zip(*(_leaves(t) for t in (state["ema"], half["ema"], half["params"]))):
    np.testing.assert_allclose(new, 0.5 * old + 0.5 * p, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("shape", [IMAGE, VECTOR])
def test_egbad_score(shape):
  m, _, _, score = _compiled("egbad", shape)
  _, state, _ = _trained("egbad", shape)
  x = _batch(shape, seed=3)
  names = ("score", "score_recon", "score_feature") + (("score_search",) if shape == VECTOR
                                                       else ())
  out = _assert_batch_independent(score, state, x, names)
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
  search_cfg = _config("egbad").anogan.search
  nets = egbad.Networks(_config("egbad"), shape)

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
  nets = egbad.Networks(_config("egbad"), IMAGE)
  _, state, _ = _trained("egbad", IMAGE)
  z = jnp.zeros((3, 4))
  logit, feats, _ = nets.discriminate(state["params"]["d"], state["batch_stats"]["d"],
                                      _batch(IMAGE, n=3), z, train=False)
  assert logit.shape == (3,)
  assert feats["penultimate"].shape == (3, 8) and feats["z"].shape == (3, 8)
  assert feats["block0"].shape == (3, 8, 8, 4) and feats["block1"].shape == (3, 4, 4, 8)


def test_egbad_rejects_bad_config():
  with pytest.raises(ValueError, match="feature_weight"):
    methods.make(_config("egbad", egbad__feature_weight=1.5), VECTOR)
  with pytest.raises(ValueError, match="search_steps"):
    methods.make(_config("egbad", egbad__search_steps=-1), VECTOR)
  with pytest.raises(ValueError, match="square"):
    methods.make(_config("egbad"), (16, 8, 1))
  m = methods.make(_config("egbad", egbad__feature_layer="block7"), VECTOR)
  x = jnp.zeros((2,) + VECTOR)
  state = jax.eval_shape(m.init, jax.random.key(0), x)
  with pytest.raises(ValueError, match="egbad.feature_layer"):
    jax.eval_shape(m.score, state, x, jax.random.key(0))


# VAE.

@pytest.mark.parametrize("shape", [IMAGE, VECTOR])
def test_vae_trains_and_scores(shape):
  _, _, train_step, score = _compiled("vae", shape)
  state, new_state, metrics = _trained("vae", shape)
  assert _all_changed(state["params"], new_state["params"])
  for name in ("loss", "recon", "kl"):
    assert np.isfinite(float(metrics[name])), name
  assert float(metrics["kl"]) >= 0.0
  np.testing.assert_allclose(float(metrics["loss"]), float(metrics["recon"] + metrics["kl"]),
                             rtol=1e-5)
  # beta is read from the state.
  half = dict(state, hparams=dict(state["hparams"], beta=jnp.float32(0.5)))
  _, m_half = train_step(half, _batch(shape), jax.random.key(1))
  np.testing.assert_allclose(float(m_half["loss"]), float(m_half["recon"] + 0.5 * m_half["kl"]),
                             rtol=1e-5)
  # A few steps on one batch lower the loss.
  s = new_state
  for i in range(15):
    s, m = train_step(s, _batch(shape), jax.random.key(10 + i))
  assert float(m["loss"]) < float(metrics["loss"])

  x = _batch(shape, seed=3)
  out = _assert_batch_independent(score, s, x, ("score", "score_elbo"))
  assert out["recon"].shape == x.shape and ("map" in out) == (shape == IMAGE)
  for name in ("score", "score_elbo"):
    assert out[name].shape == (8,) and np.all(np.isfinite(out[name])), name
  assert np.all(out["score_elbo"] >= 0.0)
  np.testing.assert_allclose(out["score"], np.mean(np.square(x - out["recon"]).reshape(8, -1), 1),
                             rtol=1e-5)
  # "score" is deterministic (posterior mean); the ELBO estimate is sampled.
  other_key = score(s, x, jax.random.key(7))
  np.testing.assert_array_equal(other_key["score"], out["score"])
  assert not np.allclose(other_key["score_elbo"], out["score_elbo"])
  # sigma is read from the state: a wider decoder lowers the reconstruction term.
  wide = score(dict(s, hparams=dict(s["hparams"], sigma=jnp.float32(1.0))), x, jax.random.key(2))
  assert np.all(wide["score_elbo"] < out["score_elbo"])


def test_vae_rejects_bad_config():
  with pytest.raises(ValueError, match="vae.sigma"):
    methods.make(_config("vae", vae__sigma=0.0), VECTOR)
  with pytest.raises(ValueError, match="num_score_samples"):
    methods.make(_config("vae", vae__num_score_samples=0), VECTOR)
  with pytest.raises(ValueError, match="images"):
    methods.make(_config("vae"), (4, 4))


# Gaussian / Mahalanobis.

def _gaussian_data(n_train=400, dim=5, seed=0):
  rng = np.random.default_rng(seed)
  mean = rng.normal(size=dim)
  root = rng.normal(size=(dim, dim)) / np.sqrt(dim)
  train_x = (rng.normal(size=(n_train, dim)) @ root.T + mean).astype(np.float32)
  inliers = (rng.normal(size=(50, dim)) @ root.T + mean).astype(np.float32)
  outliers = inliers + rng.choice([-1.0, 1.0], size=(50, dim)).astype(np.float32) * 4.0
  return train_x, inliers, outliers


def _fit_and_score(config, train_x, x, shape):
  m = methods.make(config, shape, restore=workdir_lib.restore)
  assert m.train_step is None and m.fit is not None
  state = jax.jit(m.init)(jax.random.key(0), train_x[:4])
  score = jax.jit(m.score)
  assert np.all(np.isnan(score(state, x, jax.random.key(0))["score"]))  # Unfitted: no model.
  state = m.fit(state, train_x)
  return state, score(state, x, jax.random.key(0))


@pytest.mark.parametrize("squared", [True, False])
def test_mahalanobis_matches_sklearn_and_flags_outliers(squared):
  train_x, inliers, outliers = _gaussian_data()
  config = _config("gaussian", gaussian__features="pixels", gaussian__squared=squared)
  x = np.concatenate([inliers, outliers])
  _, out = _fit_and_score(config, train_x, x, (5,))
  reference = covariance.LedoitWolf().fit(train_x.astype(np.float64)).mahalanobis(x)
  reference = reference if squared else np.sqrt(reference)
  np.testing.assert_allclose(out["score"], reference, rtol=1e-4)
  assert out["score"][50:].min() > np.median(out["score"][:50])
  assert out["score"][50:].mean() > 3 * out["score"][:50].mean()


_TINY_MODULE = textwrap.dedent("""
    import flax.linen as nn
    import jax.numpy as jnp

    class Tiny(nn.Module):
      width: int = 3

      @nn.compact
      def __call__(self, x):
        h = nn.Dense(self.width)(x.reshape(x.shape[0], -1))
        return {"hidden": h, "squashed": jnp.tanh(h)}
""")


@pytest.fixture
def tiny_module(tmp_path, monkeypatch):
  """A flax module file importable as 'tiny_features:Tiny', and its weights in msgpack."""
  (tmp_path / "tiny_features.py").write_text(_TINY_MODULE)
  monkeypatch.syspath_prepend(str(tmp_path))
  import tiny_features  # pylint: disable=g-import-not-at-top,import-outside-toplevel
  module = tiny_features.Tiny(width=4)
  variables = module.init(jax.random.key(5), jnp.zeros((1, 5)))
  path = tmp_path / "tiny.msgpack"
  path.write_bytes(flax.serialization.to_bytes(variables))
  return module, variables, str(path)


def test_flax_file_features_round_trip(tiny_module):
  module, variables, path = tiny_module
  train_x, inliers, outliers = _gaussian_data()
  x = np.concatenate([inliers, outliers])
  config = _config("gaussian", gaussian__features="flax_file",
                   gaussian__module="tiny_features:Tiny", gaussian__module_kwargs='{"width": 4}', gaussian__weights=path,
                   gaussian__layers=("hidden",), gaussian__squared=True)
  state, out = _fit_and_score(config, train_x, x, (5,))
  jax.tree_util.tree_map(np.testing.assert_array_equal, state["net"], variables)
  feats = np.asarray(module.apply(variables, train_x)["hidden"], np.float64)
  test_feats = np.asarray(module.apply(variables, x)["hidden"], np.float64)
  reference = covariance.LedoitWolf().fit(feats).mahalanobis(test_feats)
  np.testing.assert_allclose(out["score"], reference, rtol=1e-3)
  # Every returned layer by default, each also scored on its own; a submodule
  # output (capture_intermediates) by its path.
  config.gaussian.layers = ()
  _, out = _fit_and_score(config, train_x, x, (5,))
  assert {"score_hidden", "score_squashed"} <= set(out)
  np.testing.assert_allclose(out["score"], out["score_hidden"] + out["score_squashed"], rtol=1e-5)
  config.gaussian.layers = ("Dense_0",)
  _, out = _fit_and_score(config, train_x, x, (5,))
  np.testing.assert_allclose(out["score"], reference, rtol=1e-3)  # Dense_0 is "hidden".
  # The weights file alone (params only) works too.
  with open(path, "wb") as f:
    f.write(flax.serialization.to_bytes(variables["params"]))
  methods.make(config, (5,))


def test_flax_file_errors(tiny_module, tmp_path):
  _, _, path = tiny_module

  def make(**fields):
    base = {"features": "flax_file", "module": "tiny_features:Tiny", "weights": path,
            "module_kwargs": '{"width": 4}'}
    base.update(fields)
    return methods.make(_config("gaussian", **{f"gaussian__{k}": v for k, v in base.items()}),
                        (5,))

  with pytest.raises(ValueError, match="package.module:Class"):
    make(module="tiny_features.Tiny")
  with pytest.raises(ValueError, match="cannot import 'no_such_module_xyz'"):
    make(module="no_such_module_xyz:Tiny")
  with pytest.raises(ValueError, match="no flax.linen.Module class 'Nope'"):
    make(module="tiny_features:Nope")
  with pytest.raises(ValueError, match="module_kwargs"):
    make(module_kwargs='{"depth": 2}')
  with pytest.raises(ValueError, match="not a file"):
    make(weights=str(tmp_path / "missing.msgpack"))
  with pytest.raises(ValueError, match="Dense_0/kernel has shape"):
    make(module_kwargs='{"width": 6}')
  with pytest.raises(ValueError, match="Unknown layer.*'block3'"):
    make(layers=("block3",))


def _write_workdir(workdir, config, shape, state=None):
  """A workdir as `train` leaves it: config.json and (optionally) a checkpoint of `state`."""
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, "config.json"), "w", encoding="utf-8") as f:
    json.dump(config.to_dict(), f)
  if state is not None:
    mngr = checkpoints.manager(workdir, config)
    checkpoints.save(mngr, 1, state, runner.checkpoint_meta(config, shape), force=True)
    mngr.wait_until_finished()


def test_workdir_features_of_a_trained_egbad(tmp_path):
  _, state, _ = _trained("egbad", VECTOR)
  source = _config("egbad", search_steps=3)
  workdir = str(tmp_path / "egbad_run")
  _write_workdir(workdir, source, VECTOR, state)
  train_x = np.asarray(_batch(VECTOR, n=40, seed=4))
  x = np.asarray(_batch(VECTOR, seed=5))
  config = _config("gaussian", gaussian__features="workdir", gaussian__workdir=workdir,
                   gaussian__net="encoder", gaussian__layers=("output",), gaussian__squared=True)
  fitted, out = _fit_and_score(config, train_x, x, VECTOR)
  jax.tree_util.tree_map(np.testing.assert_array_equal, fitted["net"]["params"],
                         jax.device_get(state["ema"]["e"]))  # The EMA encoder, as EGBAD scores.
  nets = egbad.Networks(source, VECTOR)
  codes = [np.asarray(nets.encode(state["ema"]["e"], {}, a, train=False)[0], np.float64)
           for a in (train_x, x)]
  reference = covariance.LedoitWolf().fit(codes[0]).mahalanobis(codes[1])
  np.testing.assert_allclose(out["score"], reference, rtol=1e-3)
  config.gaussian.net, config.gaussian.layers = "discriminator", ("penultimate", "z")
  _, out = _fit_and_score(config, train_x, x, VECTOR)
  assert set(out) == {"score", "score_penultimate", "score_z"}
  assert np.all(np.isfinite(out["score"]))


@pytest.mark.parametrize("method,nets", [
    ("ae", {"encoder"}), ("ssim_ae", {"encoder"}), ("vae", {"encoder"}),
    ("anogan", {"discriminator"}), ("egbad", {"encoder", "discriminator"}),
    ("ganomaly", None), ("gaussian", None)])
def test_methods_export_their_feature_nets(method, nets):
  # What features='workdir' reads: each net's variables of a state, and its
  # eval-mode (output, features) (shapes only: nothing compiled).
  m = methods.make(_config(method), IMAGE)
  if nets is None:
    assert m.features is None
    return
  assert set(m.features) == nets
  x = jnp.zeros((2,) + IMAGE)
  state = jax.eval_shape(m.init, jax.random.key(0), x)
  for name, net in m.features.items():
    out, feats = jax.eval_shape(net.apply, net.select(state), x)
    assert out.shape[0] == 2 and feats["penultimate"].shape[0] == 2, name


def test_workdir_errors(tmp_path):
  def make(workdir, net="encoder", restore=workdir_lib.restore):
    return methods.make(_config("gaussian", gaussian__features="workdir", gaussian__workdir=workdir,
                                gaussian__net=net), VECTOR, restore=restore)

  with pytest.raises(ValueError, match="not a ganad_jax workdir"):
    make(str(tmp_path / "missing"))
  with pytest.raises(ValueError, match="needs gaussian.workdir"):
    make("")
  ae_dir = str(tmp_path / "ae_run")
  _write_workdir(ae_dir, _config("ae"), VECTOR)
  with pytest.raises(ValueError, match="restore=ganad_jax.workdir.restore"):
    make(ae_dir, restore=None)  # Built below the workdir layer, without its restore.
  with pytest.raises(ValueError, match="No checkpoint"):
    make(ae_dir)
  ae = methods.make(_config("ae"), VECTOR)
  _write_workdir(ae_dir, _config("ae"), VECTOR, ae.init(jax.random.key(0), jnp.zeros((2,) + VECTOR)))
  with pytest.raises(ValueError, match="'ae' run has no such net; it has: encoder"):
    make(ae_dir, net="discriminator")
  gaussian_dir = str(tmp_path / "gaussian_run")
  gaussian = methods.make(_config("gaussian"), VECTOR)
  _write_workdir(gaussian_dir, _config("gaussian"), VECTOR,
                 gaussian.init(jax.random.key(0), jnp.zeros((2,) + VECTOR)))
  with pytest.raises(ValueError, match="no feature nets"):
    make(gaussian_dir)


def test_gaussian_rejects_bad_config():
  with pytest.raises(ValueError, match="gaussian.features"):
    methods.make(_config("gaussian", gaussian__features="pixel"), VECTOR)
  with pytest.raises(ValueError, match="max_features"):
    methods.make(_config("gaussian", gaussian__max_features=8), VECTOR)
  with pytest.raises(ValueError, match="Unknown layer"):
    methods.make(_config("gaussian", gaussian__layers=("output",)), VECTOR)
  m = methods.make(_config("gaussian"), VECTOR)
  state = m.init(jax.random.key(0), jnp.zeros((2,) + VECTOR))
  with pytest.raises(ValueError, match="2 training samples"):
    m.fit(state, np.zeros((1,) + VECTOR, np.float32))


@pytest.mark.parametrize("name", ["egbad_digits.py", "vae_digits.py", "gaussian_digits.py"])
def test_experiment_configs_are_valid(name):
  path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", name)
  spec = importlib.util.spec_from_file_location(name[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  configs.validate(config)
  assert config.method in methods.NAMES
  methods.make(config, (config.data.image_size, config.data.image_size, config.data.channels))
