"""A `Detector` on disk: its training workdir, and the directory `save` writes.

A saved detector is a directory with `config.json`, `detector.json`
(`FORMAT_VERSION`: the input spec, tabular scaler, thresholds, train info)
and the run's checkpoint directories (`checkpoints/`, `best/`), so that
`workdir.restore` reads it as any trained workdir. `fit_workdir` guards the
workdir a detector trains into: a checkpoint trained on other data is
refused, never resumed.
"""

import json
import os
import shutil
import tempfile
import weakref

from ganad_jax import run_outputs
from ganad_jax import train as train_lib

STATE_FILE = "detector.json"
FIT_FILE = "detector_fit.json"
# 2: the contamination threshold comes from held-out rows; thresholds per member.
FORMAT_VERSION = 2
CHECKPOINT_DIRS = ("checkpoints", "best")


def fit_workdir(workdir: str | None, owner, record: dict) -> str:
  """The workdir to train into, prepared, with `record` (data digest, spec) written.

  Args:
    workdir: the user's workdir, or None: a temporary directory removed when
      `owner` is garbage-collected.
    owner: the detector.
    record: what identifies the fit ({"data_sha256", "spec"}).

  Raises:
    ValueError: the workdir holds a checkpoint of another fit (or not of a Detector).
    PermissionError: the workdir is not writable.
  """
  if workdir is None:
    workdir = tempfile.mkdtemp(prefix="ganad_detector_")
    weakref.finalize(owner, shutil.rmtree, workdir, ignore_errors=True)
  path = os.path.join(workdir, FIT_FILE)
  trained = any(os.path.isdir(os.path.join(workdir, d)) and os.listdir(os.path.join(workdir, d))
                for d in CHECKPOINT_DIRS)
  if trained:
    previous = None
    if os.path.exists(path):
      with open(path, encoding="utf-8") as f:
        previous = json.load(f)
    if previous != record:
      raise ValueError(f"workdir {workdir!r} holds a checkpoint trained on other data (or not "
                       "by a Detector); fit into an empty or new workdir.")
  train_lib.prepare_workdir(workdir)
  run_outputs.write_json(path, record)
  return workdir


def save(path: str, workdir: str, config: dict, state: dict) -> None:
  """Writes a detector trained in `workdir` to the directory `path`.

  Args:
    path: the target; created if needed. If it exists it must be empty,
      `workdir` itself, or hold a saved detector (whose checkpoints are replaced).
    workdir: the detector's training workdir (its checkpoints are copied).
    config: the config's `to_dict()`, written as config.json.
    state: detector.json's content but "format_version".

  Raises:
    ValueError: `path` exists, is not empty and is not a saved detector.
  """
  path = os.path.abspath(path)
  same = os.path.abspath(workdir) == path
  if not same and os.path.isdir(path) and os.listdir(path):
    if not os.path.exists(os.path.join(path, STATE_FILE)):
      raise ValueError(f"{path!r} exists and is not a saved Detector; save into an empty or "
                       "new directory.")
    for name in CHECKPOINT_DIRS:
      shutil.rmtree(os.path.join(path, name), ignore_errors=True)
  os.makedirs(path, exist_ok=True)
  if not same:
    for name in CHECKPOINT_DIRS:
      source = os.path.join(workdir, name)
      if os.path.isdir(source):
        shutil.copytree(source, os.path.join(path, name))
  run_outputs.write_json(os.path.join(path, "config.json"), config)
  run_outputs.write_json(os.path.join(path, STATE_FILE), dict(state, format_version=FORMAT_VERSION))


def read_state(path: str) -> dict:
  """detector.json of the saved detector `path`.

  Raises:
    FileNotFoundError: `path` holds no saved Detector.
    ValueError: another format version (version 1 took the contamination
      threshold from fitted rows: such a detector must be fitted again).
  """
  state_path = os.path.join(path, STATE_FILE)
  if not os.path.exists(state_path):
    raise FileNotFoundError(f"{state_path} not found: {path!r} is not a saved Detector.")
  with open(state_path, encoding="utf-8") as f:
    saved = json.load(f)
  if saved.get("format_version") != FORMAT_VERSION:
    raise ValueError(f"{state_path} has format version {saved.get('format_version')}; this "
                     f"ganad_jax reads version {FORMAT_VERSION} (version 1 took the "
                     "contamination threshold from fitted rows): fit it again.")
  return saved
