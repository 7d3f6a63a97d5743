"""Runs that cannot silently reuse, leak or misread (issue 15).

1. A checkpoint is resumed only by the run that wrote it: other data settings,
   seed, protocol or training data are refused by name; fields that cannot
   change the state at a step (`configs.RESUME_NEUTRAL_FIELDS`: the run's
   length, logging and checkpoint cadence, mesh, ...) may differ.
2. A benchmark or sweep reuses a finished run only when it was made with the
   same config but for `configs.RESULT_NEUTRAL_FIELDS`; otherwise it refuses
   before anything trains, or with `overwrite` deletes and reruns it.
3. A run resumed at its final checkpoint (killed while scoring) writes the
   results.json of the uninterrupted run, wall times aside.

Every run uses configs/test.py (16x16 digits, a 4-channel DCGAN AE, 6 steps).
"""

import json
import logging
import os
import shutil
import traceback

import numpy as np
import pytest

from ganad_jax import benchmark
from ganad_jax import checkpoints
from ganad_jax import configs
from ganad_jax import data
from ganad_jax import runner
from ganad_jax import sweep
from ganad_jax import train
from ganad_jax import workdir as workdir_lib
from configs import test as test_config

SHAPE = (16, 16, 1)


def _config(method="ae", **overrides):
  """configs/test.py (6 steps, checkpoints at 3 and 6) with `overrides` ("a.b": value)."""
  config = test_config.get_config(f"method={method}")
  config.update_from_flattened_dict(overrides)
  return config


def _results(workdir):
  with open(os.path.join(workdir, "results.json"), encoding="utf-8") as f:
    return json.load(f)


def _snapshot(workdir):
  """What a refused run must leave as it was: every file's bytes."""
  out = {}
  for root, _, files in os.walk(workdir):
    for name in files:
      path = os.path.join(root, name)
      with open(path, "rb") as f:
        out[os.path.relpath(path, workdir)] = f.read()
  return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A finished 6-step run of configs/test.py: the workdir every test copies."""
  workdir = str(tmp_path_factory.mktemp("trained"))
  train.train_and_evaluate(_config(), workdir)
  return workdir


@pytest.fixture
def copy_of(tmp_path):
  def copy(workdir, name="copy"):
    dst = str(tmp_path / name)
    shutil.copytree(workdir, dst)
    return dst
  return copy


@pytest.fixture
def no_training(monkeypatch):
  """Fails the test if a train step is built (a refusal must come before any work)."""
  def refuse(*args, **kwargs):
    raise AssertionError("training started instead of refusing")
  monkeypatch.setattr(runner, "make_train_step", refuse)


# ------------------------------------------------- 1. resume only the same run ---


def _perturbed_training_data(monkeypatch):
  """data.load as before, but one training pixel changed: same config, other data."""
  load = data.load

  def perturbed(*args, **kwargs):
    splits = load(*args, **kwargs)
    x = splits.train.x.copy()
    x[0, 0, 0, 0] += 0.5
    return splits.__class__(train=data.Split(x, splits.train.y, splits.train.kinds),
                            val=splits.val, test=splits.test, info=splits.info)

  monkeypatch.setattr(train.data, "load", perturbed)


OTHER_RUN = {
    "class_index": ({"data.class_index": 3},
                    r"was written for data\.class_index=0; this run has data\.class_index=3\."),
    "seed": ({"seed": 1}, r"was written for seed=0; this run has seed=1\."),
    "class_index_and_seed": (
        {"data.class_index": 3, "seed": 1},
        r"was written for data\.class_index=0, seed=0; this run has data\.class_index=3, "
        r"seed=1\."),
    "protocol": ({"data.protocol": "normal_class", "data.max_per_class": 30},  # 21 normals.
                 r"was written for data\.max_per_class=20, data\.protocol=\"anomaly_class\"; "
                 r"this run has data\.max_per_class=30, data\.protocol=\"normal_class\"\."),
    "max_per_class": ({"data.max_per_class": 30},
                      r"was written for data\.max_per_class=20; this run has data\.max_per_class=30\."),
    "val_fraction": ({"data.val_fraction": 0.2},
                     r"was written for data\.val_fraction=0\.1; this run has data\.val_fraction=0\.2\."),
    "early_stopping": ({"train.early_stopping.eval_every": 2},
                       r"was written for train\.early_stopping\.eval_every=0; this run has "
                       r"train\.early_stopping\.eval_every=2\."),
    "training_data_content": (
        _perturbed_training_data,
        r"was written for data_sha256=[0-9a-f]{12}\.\.\.; this run has "
        r"data_sha256=[0-9a-f]{12}\.\.\.\."),
}


@pytest.mark.parametrize("case", list(OTHER_RUN))
def test_resume_refuses_a_checkpoint_of_another_run(case, trained, copy_of, monkeypatch,
                                                   no_training):
  """Other data settings, seed, protocol, selection or data content: refused by name."""
  change, match = OTHER_RUN[case]
  if callable(change):
    change(monkeypatch)
    change = {}
  workdir = copy_of(trained)
  before = _snapshot(workdir)
  with pytest.raises(checkpoints.IncompatibleCheckpointError,
                     match=r"^Checkpoint .*/copy/checkpoints/6 " + match +
                     r" Use a fresh --workdir, or the config that wrote it\.$") as info:
    train.train_and_evaluate(_config(**change), workdir)
  assert "\n" not in str(info.value)
  assert "/ganad_jax/" in traceback.extract_tb(info.tb)[-1].filename
  assert _snapshot(workdir) == before  # Not even config.json is rewritten.


def test_resume_accepts_resume_neutral_fields_and_extends_the_run(trained, copy_of, tmp_path,
                                                                  caplog):
  """Longer run, other cadence, threshold and scoring batch: resumed, same as uninterrupted."""
  neutral = {"train.num_steps": 9, "train.log_every": 1, "train.checkpoint_every": 2,
             "train.max_checkpoints": 3, "eval.threshold_quantile": 0.9,
             "eval.batch_size": 32, "train.image_grid_size": 2, "mesh.devices": 1}
  assert all(any(k == n or k.startswith(n + ".") for n in configs.RESUME_NEUTRAL_FIELDS)
             for k in neutral)
  workdir = copy_of(trained)
  with caplog.at_level(logging.INFO):
    train.train_and_evaluate(_config(**neutral), workdir)
  assert any("at step 6." in r.getMessage() for r in caplog.records if "Resumed" in r.getMessage())
  reference = str(tmp_path / "uninterrupted9")
  train.train_and_evaluate(_config(**neutral), reference)
  resumed, straight = _results(workdir), _results(reference)
  assert resumed["steps"] == 9
  assert resumed["final_train_metrics"] == straight["final_train_metrics"]
  assert resumed["metrics"] == straight["metrics"]


def test_resume_refuses_a_checkpoint_past_num_steps(trained, copy_of, no_training):
  workdir = copy_of(trained)
  with pytest.raises(checkpoints.IncompatibleCheckpointError,
                     match=r"^Checkpoint .*/checkpoints/6 is at step 6, past the 3 steps of this "
                     r"run \(train\.num_steps=3, train\.num_epochs=15\.0\)\. Use a fresh "
                     r"--workdir, or at least 6 steps\.$"):
    train.train_and_evaluate(_config(**{"train.num_steps": 3}), workdir)


def test_a_best_state_of_another_run_is_refused(tmp_path):
  """best/ left beside an empty checkpoints/ must not steer another run's early stopping."""
  early = {"train.early_stopping.eval_every": 3}
  first = str(tmp_path / "first")
  train.train_and_evaluate(_config(**early), first)
  second = str(tmp_path / "second")
  shutil.copytree(os.path.join(first, "best"), os.path.join(second, "best"))
  with pytest.raises(checkpoints.IncompatibleCheckpointError,
                     match=r"^Checkpoint .*/second/best/\d+ was written for seed=0; this run has "
                     r"seed=1\."):
    train.train_and_evaluate(_config(seed=1, **early), second)
  saved = os.path.join(second, "checkpoints")  # Refused before the first step, not at the end.
  assert not os.path.isdir(saved) or not [s for s in os.listdir(saved) if s.isdigit()]


def test_resume_refuses_a_checkpoint_without_run_record(trained, tmp_path, no_training):
  """A checkpoint of an older ganad_jax (model record only) cannot be checked: refused."""
  config = _config()
  state = workdir_lib.restore(trained, SHAPE, config=config).state
  workdir = str(tmp_path / "old")
  mngr = checkpoints.manager(workdir, config)
  checkpoints.save(mngr, 6, state, runner.checkpoint_meta(config, SHAPE), force=True)
  mngr.wait_until_finished()
  with pytest.raises(checkpoints.IncompatibleCheckpointError,
                     match=r"^Checkpoint .*/old/checkpoints/6 has no record of the data, seed "
                     r"and settings it was trained with \(written by an older ganad_jax\)"):
    train.train_and_evaluate(config, workdir)


def test_scoring_a_workdir_checks_the_model_only(trained):
  """workdir.restore (experiments/evaluate.py) may point the same config at another data path."""
  config = workdir_lib.load_config(trained)
  config.data.path = "/elsewhere"
  assert workdir_lib.restore(trained, SHAPE, config=config).step == 6


# ------------------------------------------ 2. benchmark / sweep reuse ---


def test_benchmark_refuses_a_finished_run_of_another_config(trained, tmp_path, monkeypatch):
  """The issue's command twice, the second with other steps and image size: refused by name."""
  root = str(tmp_path / "bench")
  shutil.copytree(trained, benchmark.run_dir(root, "ae", "0", 0))
  calls = []
  monkeypatch.setattr(train, "train_and_evaluate", lambda c, w: calls.append(w))
  before = _snapshot(root)
  other = _config(**{"train.num_steps": 300, "data.image_size": 32})
  with pytest.raises(workdir_lib.IncompatibleResultsError,
                     match=r"^.*/ae/0/seed0/results\.json was computed with data\.image_size=16, "
                     r"train\.num_steps=6; this run has data\.image_size=32, "
                     r"train\.num_steps=300\. Use another --workdir, or delete .*/ae/0/seed0 to "
                     r"run it again \(or pass --overwrite\)\.$"):
    # Seed 1 comes first and is not done: every run is checked before any trains.
    benchmark.run_grid(other, ["ae"], [0], [1, 0], root)
  assert not calls
  assert _snapshot(root) == before


def test_benchmark_reuses_a_run_that_differs_in_result_neutral_fields(trained, tmp_path,
                                                                      monkeypatch):
  root = str(tmp_path / "bench")
  shutil.copytree(trained, benchmark.run_dir(root, "ae", "0", 0))
  monkeypatch.setattr(train, "train_and_evaluate",
                      lambda c, w: pytest.fail(f"retrained {w} instead of reusing it"))
  neutral = _config(**{"train.log_every": 1, "train.checkpoint_every": 2, "mesh.devices": 1,
                       "eval.batch_size": 32, "conv_lowering": "xla",
                       "ensemble.batching": "unroll"})
  rows = benchmark.run_grid(neutral, ["ae"], [0], [0], root)
  assert rows[0]["metrics"] == _results(trained)["metrics"]["score"]


def test_benchmark_refuses_a_length_or_threshold_change(trained, tmp_path):
  """Resume-neutral is not result-neutral: the run's length and threshold change its results."""
  root = str(tmp_path / "bench")
  shutil.copytree(trained, benchmark.run_dir(root, "ae", "0", 0))
  with pytest.raises(workdir_lib.IncompatibleResultsError,
                     match=r"computed with eval\.threshold_quantile=0\.95, train\.num_steps=6; "
                     r"this run has eval\.threshold_quantile=0\.9, train\.num_steps=9\."):
    benchmark.run_grid(_config(**{"train.num_steps": 9, "eval.threshold_quantile": 0.9}),
                       ["ae"], [0], [0], root)


def test_benchmark_overwrite_reruns_a_run_of_another_config(trained, tmp_path):
  root = str(tmp_path / "bench")
  workdir = benchmark.run_dir(root, "ae", "0", 0)
  shutil.copytree(trained, workdir)
  rows = benchmark.run_grid(_config(**{"train.num_steps": 4}), ["ae"], [0], [0], root,
                            overwrite=True)
  results = _results(workdir)
  assert results["steps"] == 4 and results["config"]["train"]["num_steps"] == 4
  assert rows[0]["metrics"] == results["metrics"]["score"]


def test_finished_run_without_config_in_results_falls_back_to_config_json(trained, copy_of):
  """results.json written before it recorded its config: config.json is compared."""
  workdir = copy_of(trained)
  results = _results(workdir)
  del results["config"]
  with open(os.path.join(workdir, "results.json"), "w", encoding="utf-8") as f:
    json.dump(results, f)
  assert workdir_lib.finished_results(workdir, _config()) == results
  with pytest.raises(workdir_lib.IncompatibleResultsError,
                     match=r"^.*/copy/config\.json was computed with seed=0; this run has seed=2"):
    workdir_lib.finished_results(workdir, _config(seed=2))


def test_sweep_refuses_a_finished_setting_of_another_config(trained, tmp_path, monkeypatch):
  root = str(tmp_path / "sweep")
  axes = [("train.num_steps", (6,))]
  shutil.copytree(trained, os.path.join(root, sweep.label(sweep.settings(axes)[0])))
  assert sweep.run(_config(), axes, root)[0]["setting"] == "train.num_steps=6"  # Reused.
  monkeypatch.setattr(train, "train_and_evaluate", lambda c, w: pytest.fail("trained"))
  with pytest.raises(workdir_lib.IncompatibleResultsError,
                     match=r"computed with data\.max_per_class=20; this run has "
                     r"data\.max_per_class=30\."):
    sweep.run(_config(**{"data.max_per_class": 30}), axes, root)


# --------------------------------- 3. resumed at the final checkpoint: same results ---


@pytest.mark.parametrize("ensemble", [False, True])
def test_resumed_at_final_checkpoint_writes_the_same_results(ensemble, tmp_path, trained):
  """Killed after the last checkpoint (while scoring): the rerun's results.json is the same."""
  if ensemble:
    config = _config(**{"ensemble.seeds": (0, 1)})
    reference = str(tmp_path / "uninterrupted")
    train.train_and_evaluate(config, reference)
  else:
    config, reference = _config(), trained
  workdir = str(tmp_path / "killed")
  shutil.copytree(reference, workdir)
  os.remove(os.path.join(workdir, "results.json"))  # What a kill while scoring leaves.
  train.train_and_evaluate(config, workdir)
  resumed, straight = _results(workdir), _results(reference)
  assert set(resumed["wall_time_s"]) == set(straight["wall_time_s"])
  del resumed["wall_time_s"], straight["wall_time_s"]  # The only fields that may differ.
  assert resumed == straight
  final = (straight["members"][0] if ensemble else straight)["final_train_metrics"]
  assert final is not None and np.isfinite(final["loss"])
