"""Tests of `checkpoints`: resumed only by the run that wrote them; corrupt and killed saves."""

import glob
import json
import logging
import os
import shutil
import traceback

import ml_collections
import pytest

from ganad_jax import checkpoints
from ganad_jax import configs
from ganad_jax import data
from ganad_jax import runner
from ganad_jax import train
from ganad_jax import workdir as workdir_lib
import harness
import helpers


def _train_command(workdir):
  return harness.script("train.py", "--config=configs/test.py", f"--workdir={workdir}",
                        *(f"--config.{k}={v}" for k, v in helpers.LONG_OVERRIDES.items()))


def test_sigkill_then_rerun_matches_uninterrupted_run(long_run, tmp_path, caplog,
                                                     shared_compilation_cache):
  """SIGKILL in the middle of a checkpoint save, run the same config again: same params, metrics.

  The rerun is in this process (the CLI's rerun of a killed run is the
  ensemble's SIGKILL test's, tests/test_ensemble.py).
  """
  workdir = str(tmp_path / "killed")
  ckpt_dir = os.path.join(workdir, "checkpoints")
  env = harness.script_env(shared_compilation_cache)
  # Kill while the save after the step-EVERY checkpoint is being written.
  killed_during = harness.kill_when(
      _train_command(workdir), env, tmp_path / "killed.log",
      lambda: harness.checkpoint_in_flight(ckpt_dir, helpers.LONG_EVERY))
  assert not os.path.exists(os.path.join(workdir, "results.json"))
  # The newest complete checkpoint; the one in flight is not.
  killed_at = helpers.checkpoint_steps(workdir)[-1]
  assert helpers.LONG_EVERY <= killed_at < helpers.LONG_STEPS, (killed_at, killed_during)

  with caplog.at_level(logging.INFO):
    train.train_and_evaluate(helpers.long_config(), workdir)  # What _train_command runs.
  resumed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Resumed")]
  assert any(m.endswith(f"at step {killed_at}.") for m in resumed), resumed
  assert helpers.checkpoint_steps(workdir) == helpers.checkpoint_steps(long_run)
  step_a, state_a = helpers.restore(long_run)
  step_b, state_b = helpers.restore(workdir)
  assert step_a == step_b == helpers.LONG_STEPS
  helpers.assert_same_state(state_a, state_b)  # Bitwise: params, batch stats, optimiser state.
  # Metrics, thresholds, train loss, data.
  assert helpers.results_without_wall_time(workdir) == helpers.results_without_wall_time(long_run)


def _flip_middle_bytes(path):
  n = os.path.getsize(path)
  with open(path, "r+b") as f:
    f.seek(n // 2)
    chunk = f.read(16)
    f.seek(n // 2)
    f.write(bytes(b ^ 0x5A for b in chunk))


def _corrupt(step_dir, how):
  # OCDBT keeps the arrays' bytes in ocdbt.process_0/d/* and the b-tree root in d/*.
  array_data = glob.glob(os.path.join(step_dir, "state", "ocdbt.process_0", "d", "*"))
  state_data = glob.glob(os.path.join(step_dir, "state", "**", "d", "*"), recursive=True)
  assert array_data, os.listdir(os.path.join(step_dir, "state"))
  if how == "state_bytes_flipped":
    # Same size, other bytes. Orbax restores such a file without complaint (its
    # CRCs cover the b-tree, not the array bytes): only the digest in `meta` tells.
    for path in array_data:
      _flip_middle_bytes(path)
  elif how == "state_truncated":
    for path in state_data:
      with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 3)
  elif how == "meta_deleted":
    shutil.rmtree(os.path.join(step_dir, "meta"))
  elif how == "meta_garbled":
    for path in glob.glob(os.path.join(step_dir, "meta", "*")):
      with open(path, "w", encoding="utf-8") as f:
        f.write('{"method": "ae", "input_sh')


@pytest.mark.parametrize("how", ["state_bytes_flipped", "state_truncated", "meta_deleted",
                                 "meta_garbled"])
def test_corrupt_latest_checkpoint_falls_back_to_the_previous_one(long_run, copy_of, how,
                                                                 caplog):
  workdir = copy_of(long_run)
  latest = os.path.join(workdir, "checkpoints", str(helpers.LONG_STEPS))
  _corrupt(latest, how)
  with caplog.at_level(logging.INFO):
    train.train_and_evaluate(helpers.long_config(), workdir)
  errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
  assert any(latest in m for m in errors), errors  # Named, by path.
  infos = [r.getMessage() for r in caplog.records]
  previous = os.path.join(workdir, "checkpoints", str(helpers.LONG_STEPS - helpers.LONG_EVERY))
  assert any(m.startswith(f"Resuming from older checkpoint {previous}:") for m in infos), infos
  previous_step = helpers.LONG_STEPS - helpers.LONG_EVERY
  assert any(m.endswith(f"at step {previous_step}.") for m in infos), infos
  # The bad checkpoint is kept aside for inspection, the run finished and re-saved the step.
  assert glob.glob(latest + ".corrupt*")
  assert helpers.checkpoint_steps(workdir) == [helpers.LONG_STEPS - helpers.LONG_EVERY,
                                               helpers.LONG_STEPS]
  helpers.assert_same_state(helpers.restore(long_run)[1], helpers.restore(workdir)[1])
  assert helpers.results_without_wall_time(workdir) == helpers.results_without_wall_time(long_run)


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
  before = helpers.snapshot(workdir)
  with pytest.raises(checkpoints.IncompatibleCheckpointError,
                     match=r"^Checkpoint .*/copy/checkpoints/6 " + match +
                     r" Use a fresh --workdir, or the config that wrote it\.$") as info:
    train.train_and_evaluate(helpers.tiny_config(**change), workdir)
  assert "\n" not in str(info.value)
  assert "/ganad_jax/" in traceback.extract_tb(info.tb)[-1].filename
  assert helpers.snapshot(workdir) == before  # Not even config.json is rewritten.


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
    train.train_and_evaluate(helpers.tiny_config(**neutral), workdir)
  assert any("at step 6." in r.getMessage() for r in caplog.records if "Resumed" in r.getMessage())
  reference = str(tmp_path / "uninterrupted9")
  train.train_and_evaluate(helpers.tiny_config(**neutral), reference)
  resumed, straight = helpers.read_results(workdir), helpers.read_results(reference)
  assert resumed["steps"] == 9
  assert resumed["final_train_metrics"] == straight["final_train_metrics"]
  assert resumed["metrics"] == straight["metrics"]


def test_resume_refuses_a_checkpoint_without_run_record(trained, tmp_path, no_training):
  """A checkpoint of an older ganad_jax (model record only) cannot be checked: refused."""
  config = helpers.tiny_config()
  state = workdir_lib.restore(trained, helpers.SHAPE, config=config).state
  workdir = str(tmp_path / "old")
  mngr = checkpoints.manager(workdir, config)
  checkpoints.save(mngr, 6, state, runner.checkpoint_meta(config, helpers.SHAPE), force=True)
  mngr.wait_until_finished()
  with pytest.raises(checkpoints.IncompatibleCheckpointError,
                     match=r"^Checkpoint .*/old/checkpoints/6 has no record of the data, seed "
                     r"and settings it was trained with \(written by an older ganad_jax\)"):
    train.train_and_evaluate(config, workdir)


def test_a_run_record_with_every_methods_sections_resumes_the_same_run():
  # Checkpoints written when a config held every method's sections record them
  # all in `run`; only this method's fields count (tests/configs/old_layout/).
  with open(os.path.join(os.path.dirname(__file__), "configs", "old_layout", "ssim_ae.json"),
            encoding="utf-8") as f:
    old = json.load(f)
  config = helpers.tiny_config("ssim_ae")
  meta = runner.checkpoint_meta(config, helpers.SHAPE, data_sha256="d" * 64)
  old_run = dict(configs.run_record(ml_collections.ConfigDict(old),
                                    configs.RESUME_NEUTRAL_FIELDS), data_sha256="d" * 64)
  assert "padim.eps" in old_run and "padim.eps" not in meta["run"]
  checkpoints.check_compatible("ckpt/6", dict(meta, run=old_run), meta)
  old_run["ssim.window"] = 11
  with pytest.raises(checkpoints.IncompatibleCheckpointError,
                     match=r"was written for ssim.window=11; this run has ssim.window=7\."):
    checkpoints.check_compatible("ckpt/6", dict(meta, run=old_run), meta)
