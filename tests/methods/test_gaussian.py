"""Tests of `methods.gaussian`: Mahalanobis on pixels, flax-file, workdir, pretrained features."""

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
from ganad_jax import data
from ganad_jax import ensemble
from ganad_jax import methods
from ganad_jax import run_outputs
from ganad_jax import runner
from ganad_jax import workdir as workdir_lib
from ganad_jax.methods import egbad
from ganad_jax.methods import runs
from configs import test as test_config
import helpers

IMAGE = (16, 16, 1)
VECTOR = (10,)


def _gaussian_data(n_train=400, dim=5, seed=0):
  rng = np.random.default_rng(seed)
  mean = rng.normal(size=dim)
  root = rng.normal(size=(dim, dim)) / np.sqrt(dim)
  train_x = (rng.normal(size=(n_train, dim)) @ root.T + mean).astype(np.float32)
  inliers = (rng.normal(size=(50, dim)) @ root.T + mean).astype(np.float32)
  outliers = inliers + rng.choice([-1.0, 1.0], size=(50, dim)).astype(np.float32) * 4.0
  return train_x, inliers, outliers


def _fit_and_score(config, train_x, x, shape):
  m = methods.make(config, shape)
  assert m.train_step is None and m.fit is not None
  state = jax.jit(m.init)(jax.random.key(0), train_x[:4])
  score = jax.jit(m.score)
  assert np.all(np.isnan(score(state, x, jax.random.key(0))["score"]))  # Unfitted: no model.
  state = m.fit(state, train_x)
  return state, score(state, x, jax.random.key(0))


@pytest.mark.parametrize("squared", [True, False])
def test_mahalanobis_matches_sklearn_and_flags_outliers(squared):
  train_x, inliers, outliers = _gaussian_data()
  config = helpers.method_config("gaussian", gaussian__features="pixels", gaussian__squared=squared)
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
  config = helpers.method_config("gaussian", gaussian__features="flax_file",
                                 gaussian__module="tiny_features:Tiny",
                                 gaussian__module_kwargs='{"width": 4}', gaussian__weights=path,
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
    return methods.make(
        helpers.method_config("gaussian", **{f"gaussian__{k}": v for k, v in base.items()}), (5,))

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
  _, state, _ = helpers.one_step("egbad", VECTOR)
  source = helpers.method_config("egbad", search_steps=3)
  workdir = str(tmp_path / "egbad_run")
  _write_workdir(workdir, source, VECTOR, state)
  train_x = np.asarray(helpers.batch(VECTOR, n=40, seed=4))
  x = np.asarray(helpers.batch(VECTOR, seed=5))
  config = helpers.method_config("gaussian", gaussian__features="workdir",
                                 gaussian__workdir=workdir, gaussian__net="encoder",
                                 gaussian__layers=("output",), gaussian__squared=True)
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


def test_workdir_errors(tmp_path, monkeypatch):
  def make(workdir, net="encoder"):
    return methods.make(helpers.method_config("gaussian", gaussian__features="workdir",
                                              gaussian__workdir=workdir, gaussian__net=net),
                        VECTOR)

  with pytest.raises(ValueError, match="not a ganad_jax workdir"):
    make(str(tmp_path / "missing"))
  with pytest.raises(ValueError, match="needs gaussian.workdir"):
    make("")
  ae_dir = str(tmp_path / "ae_run")
  _write_workdir(ae_dir, helpers.method_config("ae"), VECTOR)
  with monkeypatch.context() as patch:  # Built without the workdir layer's reader of runs.
    patch.setattr(runs, "_READER", [])
    with pytest.raises(RuntimeError, match="import ganad_jax.workdir first"):
      make(ae_dir)
  with pytest.raises(ValueError, match="No checkpoint"):
    make(ae_dir)
  ae = methods.make(helpers.method_config("ae"), VECTOR)
  _write_workdir(ae_dir, helpers.method_config("ae"), VECTOR,
                 ae.init(jax.random.key(0), jnp.zeros((2,) + VECTOR)))
  with pytest.raises(ValueError, match="'ae' run has no such net; it has: encoder"):
    make(ae_dir, net="discriminator")
  gaussian_dir = str(tmp_path / "gaussian_run")
  gaussian = methods.make(helpers.method_config("gaussian"), VECTOR)
  _write_workdir(gaussian_dir, helpers.method_config("gaussian"), VECTOR,
                 gaussian.init(jax.random.key(0), jnp.zeros((2,) + VECTOR)))
  with pytest.raises(ValueError, match="no feature nets"):
    make(gaussian_dir)


def test_gaussian_rejects_bad_config():
  with pytest.raises(ValueError, match="gaussian.features"):
    methods.make(helpers.method_config("gaussian", gaussian__features="pixel"), VECTOR)
  with pytest.raises(ValueError, match="max_features"):
    methods.make(helpers.method_config("gaussian", gaussian__max_features=8), VECTOR)
  with pytest.raises(ValueError, match="Unknown layer"):
    methods.make(helpers.method_config("gaussian", gaussian__layers=("output",)), VECTOR)
  m = methods.make(helpers.method_config("gaussian"), VECTOR)
  state = m.init(jax.random.key(0), jnp.zeros((2,) + VECTOR))
  with pytest.raises(ValueError, match="2 training samples"):
    m.fit(state, np.zeros((1,) + VECTOR, np.float32))


@pytest.mark.parametrize("name", ["gaussian_digits.py"])
def test_experiment_configs_are_valid(name):
  assert helpers.experiment_config(name).method == "gaussian"


def test_gaussian_workdir_features_of_an_ensemble(ensemble_workdir):
  workdir, _ = ensemble_workdir
  config = test_config.get_config("method=gaussian")
  config.gaussian.features, config.gaussian.workdir = "workdir", workdir
  with pytest.raises(ValueError, match=(
      f"^gaussian.workdir='{workdir}': workdir '{workdir}' holds an ensemble of 4 members .*"
      r"choose one with gaussian.member=k \(0 <= k < 4\)\.$")):
    methods.make(config, (16, 16, 1))
  config.gaussian.member = 3
  method = methods.make(config, (16, 16, 1))
  splits = data.load(config.data, config.seed)
  state = method.init(jax.random.key(0), splits.train.x[:2])
  member = ensemble.member_state(workdir_lib.restore(workdir, (16, 16, 1)).state, 3)
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(state["net"]["params"]),
               member["params"]["encoder"])
  config.gaussian.member = 7
  with pytest.raises(ValueError, match="member=7 is out of range"):
    methods.make(config, (16, 16, 1))


@pytest.mark.usefixtures("weights_cache")
def test_gaussian_pretrained_every_level_and_selection(backbone_weights):
  config = helpers.pretrained_config("gaussian", backbone_weights,
                                     **{"gaussian.features": "pretrained",
                                        "gaussian.select_levels": 1})
  method = methods.make(config, helpers.PRETRAINED_SHAPE)
  train_x, val_x = helpers.smooth_images(64), helpers.smooth_images(16, seed=1)
  state = method.fit(method.init(jax.random.key(0), train_x[:2]), train_x, val_x)
  levels = ["stem"] + [f"stage{i}" for i in range(1, 8)] + ["head"]
  weights_ = np.asarray(state["level_weights"])
  aurocs = np.asarray(state["selection_auroc"])
  assert weights_.sum() == 1.0 and np.all((aurocs >= 0) & (aurocs <= 1))
  chosen = levels[int(np.argmax(weights_))]
  # The chosen level is the one with the best CutPaste AUROC (ties: the earlier).
  assert int(np.argmax(weights_)) == int(np.argmax(np.asarray(state["selection_auroc"])))
  out = jax.jit(method.score)(state, helpers.smooth_images(8, seed=2), jax.random.key(0))
  assert sorted(k for k in out if k.startswith("score_")) == sorted(f"score_{n}" for n in levels)
  np.testing.assert_allclose(out["score"], out[f"score_{chosen}"], rtol=1e-6)


@pytest.mark.usefixtures("weights_cache")
def test_gaussian_selection_needs_validation_normals(backbone_weights):
  config = helpers.pretrained_config("gaussian", backbone_weights,
                                     **{"gaussian.features": "pretrained",
                                        "gaussian.select_levels": 2})
  method = methods.make(config, helpers.PRETRAINED_SHAPE)
  train_x = helpers.smooth_images(16)
  with pytest.raises(ValueError, match=r"select_levels=2 ranks layers on the validation normals; "
                     r"there are 3 \(fewer than 8\)"):
    method.fit(method.init(jax.random.key(0), train_x[:2]), train_x, train_x[:3])


def test_fewer_samples_than_features_fit_finite_without_a_regulariser_to_raise(monkeypatch):
  """The Gaussian needs no eps: Ledoit-Wolf shrinks a singular covariance, and the whitening
  drops eigenvalues under pinvh's cutoff, so 3 samples of 5 features (one constant) fit."""
  train_x = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)
  train_x[:, 4] = 1.0
  config = helpers.method_config("gaussian", gaussian__features="pixels")
  monkeypatch.setattr(run_outputs, "PROGRESS_EVERY_S", 0.0)  # A progress line every batch.
  lines = []
  monkeypatch.setattr(run_outputs.logging, "info", lambda fmt, *a: lines.append(fmt % a))
  state, out = _fit_and_score(config, train_x, train_x, (5,))
  assert np.all(np.isfinite(np.asarray(state["stats"]["layer0"]["whitening"])))
  assert np.all(np.isfinite(out["score"]))
  assert [l.split(" (")[0] for l in lines if l.startswith("gaussian fit")] == [
      "gaussian fit: features of the training split: row 3/3",
      "gaussian fit: covariances and whitenings: layer 1/1"]
