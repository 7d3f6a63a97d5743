"""Reliability: kill and resume, atomic outputs, corrupt checkpoints, divergence, bad input.

Covers the training loop (AE / SSIM-AE runs) and the resumable scoring of an
AnoGAN latent search; ensembles are tested in tests/test_ensemble.py. Determinism (same seed -> same metrics, other
seed -> other metrics) is in tests/test_train.py; the kill-and-resume test
below adds the cross-process version of it. The metric property tests
(AUROC vs scikit-learn, monotone invariance, perfect separation, label flip,
NaN / Inf refused) are in tests/test_metrics.py.

Every run uses configs/test.py (16x16 digits, a 4-channel DCGAN AE): the whole
file takes well under a minute on 2 CPU cores.
"""

import csv
import glob
import gzip
import json
import logging
import os
import shutil
import struct
import traceback

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

from ganad_jax import checkpoints
from ganad_jax import data
from ganad_jax import divergence
from ganad_jax import evaluation
from ganad_jax import reporting
from ganad_jax import runner
from ganad_jax import train
from ganad_jax import workdir as workdir_lib
from configs import test as test_config
import harness

NUM_STEPS, EVERY = 20, 5  # Checkpoints at 1 (Orbax saves the first step), 5, 10, 15, 20.
OVERRIDES = {"train.num_steps": NUM_STEPS, "train.checkpoint_every": EVERY}
SHAPE = (16, 16, 1)


def _config(method="ae", **overrides):
  """configs/test.py with OVERRIDES and `overrides` ("section.field": value) applied."""
  config = test_config.get_config(f"method={method}")
  config.update_from_flattened_dict({**OVERRIDES, **overrides})
  return config


def _restore(workdir):
  """(step, state) of the workdir's newest good checkpoint, for the config it was trained with."""
  trained = workdir_lib.restore(workdir, SHAPE)
  return trained.step, trained.state


def _assert_same_state(a, b):
  jax.tree.map(np.testing.assert_array_equal, a, b)


def _results(workdir):
  with open(os.path.join(workdir, "results.json"), encoding="utf-8") as f:
    results = json.load(f)
  del results["wall_time_s"]  # The only field that may differ between equal runs.
  return results


def _steps(workdir):
  """Finalised checkpoint steps (Orbax's temporary directories excluded)."""
  names = os.listdir(os.path.join(workdir, "checkpoints"))
  return sorted(int(n) for n in names if n.isdigit())


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
  """One run of NUM_STEPS steps, never interrupted: the reference of every comparison."""
  workdir = str(tmp_path_factory.mktemp("uninterrupted"))
  train.train_and_evaluate(_config(), workdir)
  assert _steps(workdir) == [NUM_STEPS - EVERY, NUM_STEPS]  # max_checkpoints = 2.
  return workdir


@pytest.fixture
def copy_of(tmp_path):
  def copy(workdir):
    dst = str(tmp_path / "copy")
    shutil.copytree(workdir, dst)
    return dst
  return copy


# ------------------------------------------------------------ kill and resume ---


def _train_command(workdir):
  return harness.script("train.py", "--config=configs/test.py", f"--workdir={workdir}",
                        *(f"--config.{k}={v}" for k, v in OVERRIDES.items()))


def test_sigkill_then_rerun_matches_uninterrupted_run(uninterrupted, tmp_path,
                                                     shared_compilation_cache):
  """SIGKILL in the middle of a checkpoint save, rerun the same command: same params and metrics."""
  workdir = str(tmp_path / "killed")
  ckpt_dir = os.path.join(workdir, "checkpoints")
  env = harness.script_env(shared_compilation_cache)
  # Kill while the save after the step-EVERY checkpoint is being written.
  killed_during = harness.kill_when(_train_command(workdir), env, tmp_path / "killed.log",
                                    lambda: harness.checkpoint_in_flight(ckpt_dir, EVERY))
  assert not os.path.exists(os.path.join(workdir, "results.json"))
  killed_at = _steps(workdir)[-1]  # The newest complete checkpoint; the one in flight is not.
  assert EVERY <= killed_at < NUM_STEPS, (killed_at, killed_during)

  rerun = harness.run(_train_command(workdir), env)
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  assert f"at step {killed_at}." in rerun.stderr  # "Resumed from ... at step N."
  assert _steps(workdir) == _steps(uninterrupted)
  step_a, state_a = _restore(uninterrupted)
  step_b, state_b = _restore(workdir)
  assert step_a == step_b == NUM_STEPS
  _assert_same_state(state_a, state_b)  # Bitwise: params, batch stats, optimiser state.
  assert _results(workdir) == _results(uninterrupted)  # Metrics, thresholds, train loss, data.


def _evaluate_command(workdir, scores_out, *flags):
  return harness.script("evaluate.py", f"--workdir={workdir}", "--split=test",
                        f"--scores_out={scores_out}", *flags)


def test_killed_latent_search_resumes_from_finished_batches(tmp_path, shared_compilation_cache):
  """SIGKILL an AnoGAN evaluation after some batches: the rerun reuses them, same scores."""
  workdir = str(tmp_path / "anogan")
  config = _config("anogan", **{"train.num_steps": 2, "eval.batch_size": 8,
                                "anogan.search.steps": 30})
  train.train(config, workdir, data.load(config.data, config.seed))  # Checkpoint, no scoring.
  env = harness.script_env(shared_compilation_cache)
  reference = tmp_path / "reference.npz"
  harness.run(_evaluate_command(workdir, reference, "--nocache"), env, check=True)

  cache = os.path.join(workdir, "score_cache", "test")
  harness.kill_when(_evaluate_command(workdir, tmp_path / "resumed.npz"), env,
                    tmp_path / "killed.log",
                    lambda: len(glob.glob(os.path.join(cache, "batch_*.npz"))) >= 2)
  finished = {p: os.stat(p).st_mtime_ns for p in glob.glob(os.path.join(cache, "batch_*.npz"))}
  with np.load(reference) as ref:
    num_batches = -(-len(ref["score"]) // 8)
  assert 2 <= len(finished) < num_batches

  harness.run(_evaluate_command(workdir, tmp_path / "resumed.npz"), env, check=True)
  assert {p: os.stat(p).st_mtime_ns for p in finished} == finished  # Reused, not recomputed.
  with np.load(reference) as ref, np.load(tmp_path / "resumed.npz") as got:
    assert set(ref.files) == set(got.files)
    for name in ref.files:
      np.testing.assert_array_equal(got[name], ref[name])


# ---------------------------------------------------------- atomic outputs ---


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
def test_corrupt_latest_checkpoint_falls_back_to_the_previous_one(uninterrupted, copy_of, how,
                                                                 caplog):
  workdir = copy_of(uninterrupted)
  latest = os.path.join(workdir, "checkpoints", str(NUM_STEPS))
  _corrupt(latest, how)
  with caplog.at_level(logging.INFO):
    train.train_and_evaluate(_config(), workdir)
  errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
  assert any(latest in m for m in errors), errors  # Named, by path.
  infos = [r.getMessage() for r in caplog.records]
  previous = os.path.join(workdir, "checkpoints", str(NUM_STEPS - EVERY))
  assert any(m.startswith(f"Resuming from older checkpoint {previous}:") for m in infos), infos
  assert any(m.endswith(f"at step {NUM_STEPS - EVERY}.") for m in infos), infos
  # The bad checkpoint is kept aside for inspection, the run finished and re-saved the step.
  assert glob.glob(latest + ".corrupt*")
  assert _steps(workdir) == [NUM_STEPS - EVERY, NUM_STEPS]
  _assert_same_state(_restore(uninterrupted)[1], _restore(workdir)[1])
  assert _results(workdir) == _results(uninterrupted)


@pytest.mark.parametrize("failure", ["dumps", "fsync", "replace", "nan"])
def test_interrupted_write_json_keeps_the_previous_file(tmp_path, monkeypatch, failure):
  path = str(tmp_path / "results.json")
  reporting.write_json(path, {"auroc": 0.75})
  with open(path, encoding="utf-8") as f:
    before = f.read()

  def boom(*args, **kwargs):
    raise OSError("interrupted")

  new = {"auroc": 0.5}
  if failure == "dumps":
    monkeypatch.setattr(json, "dumps", boom)
  elif failure == "fsync":
    monkeypatch.setattr(os, "fsync", boom)
  elif failure == "replace":
    monkeypatch.setattr(os, "replace", boom)
  else:
    new = {"auroc": float("nan")}  # JSON has no NaN: refused, not written as 'NaN'.
  with pytest.raises((OSError, ValueError)):
    reporting.write_json(path, new)
  monkeypatch.undo()
  with open(path, encoding="utf-8") as f:
    assert f.read() == before
  assert os.listdir(tmp_path) == ["results.json"]  # No temporary file left behind.


# -------------------------------------------------------------- divergence ---


def _finite(tree):
  return all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(tree)
             if jnp.issubdtype(x.dtype, jnp.inexact))


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize("lr,checkpoint_every,match,kept", [
    # Adam moves every weight by ~lr: from step 2 the forward pass overflows to NaN.
    # Orbax always saves the first step, whose state is finite (if absurd); the loss
    # is next fetched at the step-4 log, one log interval later.
    (1e30, EVERY, r"^Training diverged at step 4: loss=nan; the last good checkpoint \(step 1\) "
                  r"is kept in .*/checkpoints\. Lower config\.optim\.lr", [1]),
    # lr overflows float32 to inf: step 1's loss (computed before the update) is finite,
    # but the updated state is not; it must not become a checkpoint.
    (1e39, 1, r"^Training diverged at step 1: loss=[0-9.]+ but the updated state has non-finite "
              r"values in opt_state/hyperparams/learning_rate, params/.* and \d+ more; no "
              r"checkpoint was written\. Lower config\.optim\.lr", []),
])
def test_divergence_stops_the_run_and_keeps_only_good_checkpoints(tmp_path, lr, checkpoint_every,
                                                                  match, kept):
  workdir = str(tmp_path)
  config = _config(**{"optim.lr": lr, "train.checkpoint_every": checkpoint_every,
                      "train.log_every": 4})
  with pytest.raises(divergence.DivergenceError, match=match) as info:
    train.train_and_evaluate(config, workdir)
  assert "\n" not in str(info.value)
  assert not os.path.exists(os.path.join(workdir, "results.json"))
  assert _steps(workdir) == kept
  if kept:  # The kept checkpoint predates the divergence and is finite.
    assert _finite(_restore(workdir)[1])


def test_scoring_refuses_nonfinite_inputs_and_outputs(uninterrupted):
  trained = workdir_lib.restore(uninterrupted, SHAPE)
  method, state, key = trained.method, trained.state, trained.score_key
  score = jax.jit(method.score)
  x = np.zeros((5, *SHAPE), np.float32)
  x[2, 3, 4, 0] = np.nan
  x[4, 0, 0, 0] = np.inf
  with pytest.raises(ValueError, match=r"^Refusing to score inputs with 2 NaN/Inf values"):
    evaluation.score_split(score, state, x, key, 4)
  diverged = dict(state, params=jax.tree.map(lambda p: p * jnp.inf, state["params"]))
  with pytest.raises(FloatingPointError, match=r"non-finite values of 'score'.*No results"):
    evaluation.score_split(score, diverged, np.zeros((5, *SHAPE), np.float32), key, 4)


# --------------------------------------------------------------- bad input ---


def _image(path, size=(20, 24), value=40):
  w, h = size
  array = np.full((h, w), value, np.uint8)
  array[: h // 2] = 255 - value
  Image.fromarray(array).save(path)


def _folder(root, mask_size=None):
  """A tiny MVTec-AD-style category: train/good, test/{good,scratch}, ground_truth/scratch."""
  for sub in ("train/good", "test/good", "test/scratch", "ground_truth/scratch"):
    os.makedirs(os.path.join(root, sub))
  for i in range(4):
    _image(os.path.join(root, "train", "good", f"{i:03d}.png"))
  for kind in ("good", "scratch"):
    for i in range(2):
      _image(os.path.join(root, "test", kind, f"{i:03d}.png"))
  for i in range(2):
    _image(os.path.join(root, "ground_truth", "scratch", f"{i:03d}_mask.png"),
           mask_size if (mask_size and i == 1) else (20, 24), value=0)
  return root


def _csv(path, header, rows=40):
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(header)
    writer.writerows([[str(i), str(i % 7), "a" if i % 3 else "b"] for i in range(rows)])
  return path


def _folder_config(root, **overrides):
  return _config(**{"data.source": "folder", "data.protocol": "folder", "data.path": root,
                    "data.val_fraction": 0.3, **overrides})


def _idx_without_class_3(folder):
  labels = np.array([0, 1, 2, 4] * 10, np.uint8)
  with gzip.open(os.path.join(folder, "train-images-idx3-ubyte.gz"), "wb") as f:
    f.write(struct.pack(">iiii", 2051, len(labels), 16, 16) + bytes(len(labels) * 256))
  with gzip.open(os.path.join(folder, "train-labels-idx1-ubyte.gz"), "wb") as f:
    f.write(struct.pack(">ii", 2049, len(labels)) + labels.tobytes())
  return folder


def _unknown_field(tmp, trained):
  config = _config()
  config.unlock()
  config.train.num_stepz = 3
  return config, tmp


def _no_train_good(tmp, trained):
  root = _folder(os.path.join(tmp, "cat"))
  os.rename(os.path.join(root, "train", "good"), os.path.join(root, "train", "ok"))
  return _folder_config(root), os.path.join(tmp, "run")


def _empty_train_good(tmp, trained):
  root = _folder(os.path.join(tmp, "cat"))
  for name in os.listdir(os.path.join(root, "train", "good")):
    os.remove(os.path.join(root, "train", "good", name))
  return _folder_config(root), os.path.join(tmp, "run")


def _undecodable_image(tmp, trained):
  root = _folder(os.path.join(tmp, "cat"))
  with open(os.path.join(root, "train", "good", "bad.png"), "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n but then nothing of a PNG")
  return _folder_config(root), os.path.join(tmp, "run")


def _mask_wrong_size(tmp, trained):
  return _folder_config(_folder(os.path.join(tmp, "cat"), mask_size=(10, 10))), tmp


def _no_label_column(tmp, trained):
  path = _csv(os.path.join(tmp, "t.csv"), ["a", "b", "kind"])
  return _config(**{"data.source": "tabular", "data.path": path}), os.path.join(tmp, "run")


def _empty_normal_class(tmp, trained):
  folder = _idx_without_class_3(tmp)
  return _config(**{"data.source": "idx", "data.path": folder, "data.class_index": 3,
                    "data.protocol": "normal_class"}), os.path.join(tmp, "run")


def _image_size(size):
  return lambda tmp, trained: (_config(**{"data.image_size": size}), tmp)


def _trained_workdir_with(**overrides):
  def setup(tmp, trained):
    workdir = os.path.join(tmp, "run")
    shutil.copytree(trained, workdir)
    return _config(**overrides), workdir
  return setup


def _tabular_data_on_image_checkpoint(tmp, trained):
  path = _csv(os.path.join(tmp, "t.csv"), ["a", "b", "label"], rows=120)
  return _trained_workdir_with(**{"data.source": "tabular", "data.path": path,
                                  "data.max_per_class": 0})(tmp, trained)


def _restore_other_channels(tmp, trained):
  return lambda: workdir_lib.restore(trained, (16, 16, 3))


def _restore_other_size(tmp, trained):
  return lambda: workdir_lib.restore(trained, (32, 32, 1))


def _unwritable_workdir(tmp, trained):
  blocker = os.path.join(tmp, "a_file")
  with open(blocker, "w", encoding="utf-8") as f:
    f.write("not a directory")  # We may run as root: chmod would not stop us.
  return _config(), os.path.join(blocker, "run")


BAD_INPUT = {
    "unknown_config_field": (_unknown_field, ValueError,
                             r"^Unknown config field 'config\.train\.num_stepz'; known fields "
                             r"of config\.train: batch_size, checkpoint_every"),
    "non_writable_workdir": (_unwritable_workdir, PermissionError,
                             r"^workdir '.*/a_file/run' is not writable: Not a directory$"),
    "image_size_24": (_image_size(24), ValueError,
                      r"^image_size must be a power of two >= 16 .*; got 24\.$"),
    "image_size_8": (_image_size(8), ValueError,
                     r"^image_size must be a power of two >= 16 .*; got 8\.$"),
    "class_index_out_of_range": (
        lambda tmp, trained: (_config(**{"data.class_index": 10}), tmp), ValueError,
        r"^class_index 10 out of range: digits has classes 0\.\.9\.$"),
    "empty_normal_class": (_empty_normal_class, ValueError,
                           r"^Class 3 \('3'\) of IDX folder .* has 0 examples after capping; class counts: "),
    "folder_without_train_good": (_no_train_good, FileNotFoundError,
                                  r"^No train/good folder in .*/cat \(expected .*/cat/train/good\)"),
    "folder_with_empty_train_good": (_empty_train_good, ValueError,
                                     r"^No images in .*/cat/train/good\.$"),
    "undecodable_image": (_undecodable_image, ValueError,
                          r"^Cannot decode image .*/cat/train/good/bad\.png: "),
    "mask_of_wrong_size": (_mask_wrong_size, ValueError,
                           r"^Mask .*/ground_truth/scratch/001_mask\.png is 10x10 \(WxH\) but its "
                           r"image .*/test/scratch/001\.png is 20x24\.$"),
    "csv_without_label_column": (_no_label_column, ValueError,
                                 r"^Label column 'label' not in .*/t\.csv; columns present: "
                                 r"\['a', 'b', 'kind'\]\.$"),
    "ssim_ae_on_vectors": (
        lambda tmp, trained: (_config("ssim_ae", **{
            "data.source": "tabular", "data.path": _csv(os.path.join(tmp, "t.csv"),
                                                        ["a", "b", "label"])}), tmp),
        ValueError, r"^ssim_ae needs images \(N, H, W, C\); got vectors of shape \(\d+,\)"),
    "unknown_method": (lambda tmp, trained: (_config(method="anogann"), tmp), ValueError,
                       r"^Unknown method 'anogann' \(config\.method\); choose one of "),
    "batch_larger_than_train_split": (
        lambda tmp, trained: (_config(**{"train.batch_size": 4096}), tmp), ValueError,
        r"^The training split has \d+ normal samples, fewer than config\.train\.batch_size=4096"),
    "checkpoint_of_other_method": (
        _trained_workdir_with(method="ssim_ae"), checkpoints.IncompatibleCheckpointError,
        r"^Checkpoint .*/checkpoints/20 was written by a different model \(method: checkpoint "
        r"has 'ae', this run has 'ssim_ae'\)\. Use a fresh --workdir"),
    "checkpoint_of_other_architecture": (
        _trained_workdir_with(**{"model.nz": 5}), checkpoints.IncompatibleCheckpointError,
        r"^Checkpoint .*/20 was written by a different model \(model: checkpoint has "
        r"\{.*'nz': 4.*\}, this run has \{.*'nz': 5.*\}"),
    "checkpoint_of_other_channels": (
        _trained_workdir_with(**{"data.channels": 3}), checkpoints.IncompatibleCheckpointError,
        r"^Checkpoint .*/20 was written by a different model \(input_shape: checkpoint has "
        r"\[16, 16, 1\], this run has \[16, 16, 3\]\)"),
    "checkpoint_of_other_image_size": (
        _trained_workdir_with(**{"data.image_size": 32}), checkpoints.IncompatibleCheckpointError,
        r"input_shape: checkpoint has \[16, 16, 1\], this run has \[32, 32, 1\]"),
    "checkpoint_of_other_rank": (
        _tabular_data_on_image_checkpoint, checkpoints.IncompatibleCheckpointError,
        r"input_shape: checkpoint has \[16, 16, 1\], this run has \[\d+\]"),
    "restore_for_other_channels": (
        _restore_other_channels, checkpoints.IncompatibleCheckpointError,
        r"input_shape: checkpoint has \[16, 16, 1\], this run has \[16, 16, 3\]"),
    "restore_for_other_image_size": (
        _restore_other_size, checkpoints.IncompatibleCheckpointError,
        r"input_shape: checkpoint has \[16, 16, 1\], this run has \[32, 32, 1\]"),
}


def _snapshot(workdir):
  """The files a refused run must leave as they were: config.json, results.json, checkpoints."""
  out = {}
  for name in ("config.json", "results.json"):
    path = os.path.join(workdir, name)
    if os.path.exists(path):
      with open(path, "rb") as f:
        out[name] = f.read()
  if os.path.isdir(os.path.join(workdir, "checkpoints")):
    out["checkpoints"] = sorted(os.listdir(os.path.join(workdir, "checkpoints")))
  return out


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_named_before_training(case, uninterrupted, tmp_path, monkeypatch):
  setup, error, match = BAD_INPUT[case]
  made = setup(str(tmp_path), uninterrupted)

  def no_training(*args, **kwargs):
    raise AssertionError(f"{case}: training started instead of refusing the input")

  monkeypatch.setattr(runner, "make_train_step", no_training)
  if callable(made):  # A restore for scoring (experiments/evaluate.py's path).
    call, workdir = made, uninterrupted
  else:
    config, workdir = made
    call = lambda: train.train_and_evaluate(config, workdir)
  before = _snapshot(workdir) if os.path.isdir(workdir) else {}
  with pytest.raises(error, match=match) as info:
    call()
  assert "\n" not in str(info.value)  # One line.
  # Raised by our own checks, not from deep inside JAX, Flax, Orbax or PIL.
  assert "/ganad_jax/" in traceback.extract_tb(info.tb)[-1].filename
  if os.path.isdir(workdir):  # Nothing overwritten, nothing new.
    assert _snapshot(workdir) == before
