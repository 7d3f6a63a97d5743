"""Levels 2 and 3: train steps of the AE methods, and the training loop end to end."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganad_jax import configs
from ganad_jax import data
from ganad_jax import evaluation
from ganad_jax import methods
from ganad_jax import train
from ganad_jax import workdir as workdir_lib
from configs import test as test_config
import harness

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


def test_unknown_method_is_named():
  config = test_config.get_config("method=ae")
  config.method = "anogann"
  with pytest.raises(ValueError, match="Unknown method 'anogann'"):
    methods.make(config, (16, 16, 1))


def _params(workdir):
  trained = workdir_lib.restore(workdir, (16, 16, 1))
  return trained.step, trained.state["params"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("full"))
  return workdir, train.train_and_evaluate(test_config.get_config("method=ae"), workdir)


def test_end_to_end_writes_results(uninterrupted):
  workdir, results = uninterrupted
  for name in ("config.json", "results.json", "results.md", "reconstructions.png"):
    assert os.path.exists(os.path.join(workdir, name)), name
  assert os.listdir(os.path.join(workdir, "tensorboard"))
  with open(os.path.join(workdir, "results.json")) as f:
    saved = json.load(f)
  assert saved["sizes"] == results["sizes"] and saved["steps"] == 6
  assert 0.0 <= saved["metrics"]["score"]["auroc"] <= 1.0
  assert saved["data"]["protocol"] == "anomaly_class"
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["3", "6"]


def test_resume_replays_the_uninterrupted_run(uninterrupted, tmp_path):
  full_dir, full = uninterrupted
  config = test_config.get_config("method=ae")
  config.train.num_steps = 3  # Stops after the step-3 checkpoint, as a killed run would.
  train.train_and_evaluate(config, str(tmp_path))
  resumed = train.train_and_evaluate(test_config.get_config("method=ae"), str(tmp_path))
  step_a, params_a = _params(full_dir)
  step_b, params_b = _params(str(tmp_path))
  assert step_a == step_b == 6
  jax.tree.map(np.testing.assert_array_equal, params_a, params_b)
  assert resumed["metrics"] == full["metrics"]


def test_same_seed_same_numbers_other_seed_other_numbers(uninterrupted, tmp_path):
  _, full = uninterrupted
  again = train.train_and_evaluate(test_config.get_config("method=ae"), str(tmp_path / "again"))
  assert again["metrics"] == full["metrics"]
  config = test_config.get_config("method=ae")
  config.seed = 1
  other = train.train_and_evaluate(config, str(tmp_path / "seed1"))
  assert other["metrics"] != full["metrics"]


@pytest.mark.parametrize("field,value", [("model.nz", 5), ("optim.lr", 1e-3)])
def test_checkpoint_of_another_model_or_optimiser_is_refused(uninterrupted, field, value):
  full_dir, _ = uninterrupted
  config = test_config.get_config("method=ae")
  configs.set_field(config, field, value, "Test override")
  with pytest.raises(ValueError, match=f"different model.*{field.split('.')[-1]}"):
    train.train_and_evaluate(config, full_dir)


def test_unwritable_workdir_is_named(tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("not a directory")
  with pytest.raises(PermissionError, match="not writable"):
    train.train_and_evaluate(test_config.get_config("method=ae"), str(blocker / "run"))


def test_unknown_config_field_is_named(tmp_path):
  config = test_config.get_config("method=ae")
  config.unlock()
  config.train.num_stepz = 3
  with pytest.raises(ValueError, match="config.train.num_stepz"):
    train.train_and_evaluate(config, str(tmp_path))


def test_scripts_train_then_evaluate(tmp_path, shared_compilation_cache):
  workdir = str(tmp_path / "run")
  env = harness.script_env(shared_compilation_cache)
  harness.run(harness.script("train.py", "--config=configs/test.py:method=ssim_ae",
                             f"--workdir={workdir}", "--config.train.num_steps=2"), env, check=True)
  harness.run(harness.script("evaluate.py", f"--workdir={workdir}", "--split=test",
                             f"--json_out={tmp_path}/eval.json"), env, check=True)
  with open(tmp_path / "eval.json") as f:
    evaluated = json.load(f)
  with open(os.path.join(workdir, "results.json")) as f:
    trained = json.load(f)
  assert evaluated["checkpoint_step"] == 2
  assert evaluated["metrics"] == trained["metrics"]
  bad = harness.run(harness.script("train.py", "--config=configs/test.py", f"--workdir={workdir}",
                                   "--config.train.num_stepz=2"), env)
  assert bad.returncode != 0 and "num_stepz" in bad.stderr


def test_early_stopping_keeps_the_best_state_on_validation_normals(tmp_path):
  config = test_config.get_config("method=ae")
  config.train.num_steps = 40
  config.train.early_stopping.eval_every = 2
  config.train.early_stopping.patience = 2
  config.optim.lr = 0.05  # Large enough that the validation score goes up again.
  workdir = str(tmp_path / "run")
  results = train.train_and_evaluate(config, workdir)
  best_step = results["best_step"]
  assert best_step % 2 == 0 and best_step <= results["steps"] <= 40
  assert results["stopped_early"]  # `patience` evaluations after the best one.
  assert results["steps"] == best_step + 2 * 2 < 40
  # The evaluated model is the best one, and its mean validation score is the recorded one.
  splits = data.load(config.data, config.seed)
  trained = workdir_lib.restore(workdir, splits.train.x.shape[1:], config=config)
  method, state, step, key = trained.method, trained.state, trained.step, trained.score_key
  assert step == best_step == int(state["step"])
  val = evaluation.score_split(jax.jit(method.score), state, splits.val.x, key,
                               config.eval.batch_size)
  np.testing.assert_allclose(val["score"].mean(), results["best_val_score"], rtol=1e-6)
  # A rerun of the finished run trains nothing more and reports the same.
  again = train.train_and_evaluate(config, workdir)
  assert again["metrics"] == results["metrics"] and again["best_step"] == best_step
