"""Tests of `train`: the loop end to end, resume, determinism, inputs refused before training."""

import csv
import gzip
import json
import os
import shutil
import struct
import traceback

import jax
import numpy as np
from PIL import Image
import pytest

from ganad_jax import checkpoints
from ganad_jax import configs
from ganad_jax import runner
from ganad_jax import train
from ganad_jax import workdir as workdir_lib
from configs import test as test_config
import helpers


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


def test_resume_refuses_a_checkpoint_past_num_steps(trained, copy_of, no_training):
  workdir = copy_of(trained)
  with pytest.raises(checkpoints.IncompatibleCheckpointError,
                     match=r"^Checkpoint .*/checkpoints/6 is at step 6, past the 3 steps of this "
                     r"run \(train\.num_steps=3, train\.num_epochs=15\.0\)\. Use a fresh "
                     r"--workdir, or at least 6 steps\.$"):
    train.train_and_evaluate(helpers.tiny_config(**{"train.num_steps": 3}), workdir)


@pytest.mark.parametrize("ensemble", [False, True])
def test_resumed_at_final_checkpoint_writes_the_same_results(ensemble, tmp_path, trained):
  """Killed after the last checkpoint (while scoring): the rerun's results.json is the same."""
  if ensemble:
    config = helpers.tiny_config(**{"ensemble.seeds": (0, 1)})
    reference = str(tmp_path / "uninterrupted")
    train.train_and_evaluate(config, reference)
  else:
    config, reference = helpers.tiny_config(), trained
  workdir = str(tmp_path / "killed")
  shutil.copytree(reference, workdir)
  os.remove(os.path.join(workdir, "results.json"))  # What a kill while scoring leaves.
  train.train_and_evaluate(config, workdir)
  resumed, straight = helpers.read_results(workdir), helpers.read_results(reference)
  assert set(resumed["wall_time_s"]) == set(straight["wall_time_s"])
  del resumed["wall_time_s"], straight["wall_time_s"]  # The only fields that may differ.
  assert resumed == straight
  final = (straight["members"][0] if ensemble else straight)["final_train_metrics"]
  assert final is not None and np.isfinite(final["loss"])


@pytest.mark.usefixtures("weights_cache")
@pytest.mark.parametrize("method,overrides", [
    ("gaussian", {}),  # Pixels, every layer: the state holds no NaN placeholder.
    # ImageNet weights (the torch extra): random ones leave some levels constant.
    ("gaussian", {"gaussian.features": "pretrained", "gaussian.select_levels": 2,
                  "pretrained.weights": ""}),
    ("padim", {"padim.channels": 16}),
])
def test_closed_form_methods_train_and_evaluate_end_to_end(backbone_weights, tmp_path, method,
                                                           overrides):
  """fit through the trainer (finite-state check, checkpoint, results), then a resume reads it."""
  config = test_config.get_config(f"method={method}")
  config.pretrained.backbone = "efficientnet-lite0"
  config.pretrained.weights = backbone_weights["efficientnet-lite0"]
  config.pretrained.input_size = 32
  config.update_from_flattened_dict(overrides)
  if not config.pretrained.weights:
    pytest.importorskip("torch", reason="reading the Lite0 .pth needs torch: pip install '.[torch]'")
  workdir = str(tmp_path / method)
  results = train.train_and_evaluate(config, workdir)
  assert 0.0 <= results["metrics"]["score"]["auroc"] <= 1.0
  assert results["steps"] == 0 and results["final_train_metrics"] is None  # Fitted, no steps.
  again = train.train_and_evaluate(config, workdir)  # Resumes the fitted state: same scores.
  assert again["metrics"] == results["metrics"]


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
  return helpers.long_config(**{"data.source": "folder", "data.protocol": "folder",
                                "data.path": root, "data.val_fraction": 0.3, **overrides})


def _idx_without_class_3(folder):
  labels = np.array([0, 1, 2, 4] * 10, np.uint8)
  with gzip.open(os.path.join(folder, "train-images-idx3-ubyte.gz"), "wb") as f:
    f.write(struct.pack(">iiii", 2051, len(labels), 16, 16) + bytes(len(labels) * 256))
  with gzip.open(os.path.join(folder, "train-labels-idx1-ubyte.gz"), "wb") as f:
    f.write(struct.pack(">ii", 2049, len(labels)) + labels.tobytes())
  return folder


def _unknown_field(tmp, trained):
  config = helpers.long_config()
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
  return (helpers.long_config(**{"data.source": "tabular", "data.path": path}),
          os.path.join(tmp, "run"))


def _empty_normal_class(tmp, trained):
  folder = _idx_without_class_3(tmp)
  return helpers.long_config(**{"data.source": "idx", "data.path": folder, "data.class_index": 3,
                                "data.protocol": "normal_class"}), os.path.join(tmp, "run")


def _image_size(size):
  return lambda tmp, trained: (helpers.long_config(**{"data.image_size": size}), tmp)


def _trained_workdir_with(**overrides):
  def setup(tmp, trained):
    workdir = os.path.join(tmp, "run")
    shutil.copytree(trained, workdir)
    return helpers.long_config(**overrides), workdir
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
  return helpers.long_config(), os.path.join(blocker, "run")


def _with_method(config, method: str):
  config.method = method
  return config


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
        lambda tmp, trained: (helpers.long_config(**{"data.class_index": 10}), tmp), ValueError,
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
        lambda tmp, trained: (helpers.long_config("ssim_ae", **{
            "data.source": "tabular", "data.path": _csv(os.path.join(tmp, "t.csv"),
                                                        ["a", "b", "label"])}), tmp),
        ValueError, r"^ssim_ae needs images \(N, H, W, C\); got vectors of shape \(\d+,\)"),
    # A config file cannot build an unknown method's config; one switched after it was built:
    "unknown_method": (lambda tmp, trained: (_with_method(helpers.long_config(), "anogann"), tmp),
                       ValueError, r"^Unknown method 'anogann' \(config\.method\); choose one of "),
    "batch_larger_than_train_split": (
        lambda tmp, trained: (helpers.long_config(**{"train.batch_size": 4096}), tmp), ValueError,
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
def test_bad_input_is_named_before_training(case, long_run, tmp_path, monkeypatch):
  setup, error, match = BAD_INPUT[case]
  made = setup(str(tmp_path), long_run)

  def no_training(*args, **kwargs):
    raise AssertionError(f"{case}: training started instead of refusing the input")

  monkeypatch.setattr(runner, "make_train_step", no_training)
  if callable(made):  # A restore for scoring (experiments/evaluate.py's path).
    call, workdir = made, long_run
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
