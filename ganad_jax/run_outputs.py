"""Run outputs: atomic files, the TensorBoard writer and progress lines.

`write_atomic` is the one atomic writer: every file a run writes goes through
it (or `write_json`, `save_npz`, `save_image`, `save_png`, built on it).
"""

import importlib
import json
import logging as logging_std
import math
import os
import sys
import tempfile
import time
from typing import BinaryIO, Callable

from absl import logging
import jax
from matplotlib import figure as mfigure
from matplotlib.backends import backend_agg
import numpy as np
from PIL import Image


def write_atomic(path: str, data: str | bytes | Callable[[BinaryIO], None]) -> None:
  """Writes `path` all at once or not at all: the one atomic writer of a run.

  Every file a run writes (config.json, results.json / .md, scores.npz,
  figures, reconstructions.png, benchmark / sweep tables, score caches) is to
  be written through here (or `write_json`, `save_npz`, `save_image`): the
  content goes to a hidden temporary file in the same directory (created if
  missing), is flushed and fsynced, then renamed over
  `path` with `os.replace`. A failure at any point (a figure that fails to
  render, a full disk, Ctrl-C) removes the temporary file and leaves `path`
  as it was: the old complete file, or none.

  Args:
    path: the file to write.
    data: text (written as UTF-8), bytes, or a function that writes the
      content to the binary file object it is given (np.savez, PIL's save).
  """
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.",
                             suffix=".tmp")
  try:
    with os.fdopen(fd, "wb") as f:
      if callable(data):
        data(f)
      else:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
      f.flush()
      os.fchmod(f.fileno(), 0o644)  # mkstemp's 0600 would hide results from others.
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def write_json(path: str, obj) -> None:
  """Writes `obj` as sorted, indented JSON (NaN refused), atomically."""
  write_atomic(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def save_npz(path: str, arrays: dict) -> None:
  """np.savez of `arrays` to exactly `path` (no ".npz" appended), atomically."""
  write_atomic(path, lambda f: np.savez(f, **arrays))


def save_image(path: str, image: np.ndarray) -> None:
  """Writes a uint8 HW / HWC array as an image (format from the extension), atomically."""
  fmt = Image.registered_extensions().get(os.path.splitext(path)[1].lower())
  if fmt is None:
    raise ValueError(f"Cannot tell the image format of {path} from its extension.")
  write_atomic(path, lambda f: Image.fromarray(np.asarray(image)).save(f, format=fmt))


def save_png(fig: mfigure.Figure, path: str) -> None:
  """Writes a matplotlib figure as a PNG to `path` (rendered by Agg), atomically."""
  write_atomic(path, backend_agg.FigureCanvasAgg(fig).print_png)


def finite_or_none(value):
  """`value`, or None for a NaN / Inf float (JSON has neither; e.g. an unset best score)."""
  return None if isinstance(value, float) and not math.isfinite(value) else value


class _DropOrbaxInfo(logging_std.Filter):

  def filter(self, record):
    return record.levelno >= logging_std.WARNING or "/orbax/" not in record.pathname


def quiet_orbax_logs() -> None:
  """Keeps Orbax's per-save INFO lines out of the log; its warnings still show."""
  logging.get_absl_handler().addFilter(_DropOrbaxInfo())


def tb_tag(name: str) -> str:
  """TensorBoard accepts [A-Za-z0-9_./-] in tags."""
  return name.replace("@", "_at_")


class _NoWriter:
  """A stand-in for the TensorBoard writer on the processes that do not write."""

  def __enter__(self):
    return self

  def __exit__(self, *args):
    return False

  def add_scalar(self, *args, **kwargs):
    pass

  def add_image(self, *args, **kwargs):
    pass


def tensorboard_writer(workdir: str):
  """A tensorboardX `SummaryWriter` of `workdir/tensorboard` on process 0, a no-op elsewhere.

  Use it as a context manager (it closes the event file).
  """
  if jax.process_index() != 0:
    return _NoWriter()
  return _tensorboardx().SummaryWriter(os.path.join(workdir, "tensorboard"))


def _tensorboardx():
  """The tensorboardX module, imported without loading torch where torch is not loaded yet.

  tensorboardX's writer imports torch at import time only to accept torch
  tensors; a run logs numpy values, and importing torch costs every script
  several CPU-seconds at its start (more than JAX's own import). While
  tensorboardX is imported, `import torch` fails as if torch were not
  installed; torch stays importable afterwards.
  """
  if "tensorboardX" in sys.modules or "torch" in sys.modules:
    return importlib.import_module("tensorboardX")
  sys.modules["torch"] = None  # What Python's import system reads as "no such module".
  try:
    return importlib.import_module("tensorboardX")
  finally:
    del sys.modules["torch"]


PROGRESS_EVERY_S = 10.0  # `Progress.update`'s default interval between lines, in seconds.


class Progress:
  """Logs step, steps/s and ETA (a TF-free clu.ReportProgress).

  Training calls `report` every `train.log_every` steps; a host loop over
  batches whose length is known (feature extraction, a closed-form fit,
  scoring a split) calls `update` after each batch, which logs at most every
  `every_s` seconds (and the last count, once anything was logged), so a
  loop shorter than that stays silent. The numbers computed are untouched.

  Args:
    total_steps: the count at the end (steps, or images for `unit="image"`).
    first_step: the count at the start (a resumed run's step).
    unit: what is counted, in the line ("step 4/10 ... steps/s").
    label: what the loop does, the line's prefix ("padim fit: embeddings
      of the training images"); "" for training.
    every_s: `update`'s interval between lines, in seconds; None:
      PROGRESS_EVERY_S.
  """

  def __init__(self, total_steps: int, first_step: int = 0, unit: str = "step",
               label: str = "", every_s: float | None = None):
    self.total = total_steps
    self._t0, self._s0 = time.perf_counter(), first_step
    self._unit, self._label = unit, label
    self._every_s = PROGRESS_EVERY_S if every_s is None else every_s
    self._last_line = None  # perf_counter() of the last line `update` logged.

  def line(self, step: int, metrics: dict[str, float], now: float | None = None) -> str:
    """The progress line at count `step` and time `now` (perf_counter; None: now)."""
    elapsed = (time.perf_counter() if now is None else now) - self._t0
    rate = (step - self._s0) / elapsed if elapsed > 0 else float("nan")
    eta = (self.total - step) / rate if rate > 0 else float("nan")
    text = (f"{self._unit} {step}/{self.total} ({100 * step / self.total:.0f}%) "
            f"{rate:.2f} {self._unit}s/s, ETA {_duration(eta)}")
    if self._label:
      return f"{self._label}: {text}" + "".join(
          f" {k}={v:.4g}" for k, v in sorted(metrics.items()))
    values = " ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items()))
    return f"{text} | {values}"

  def report(self, step: int, metrics: dict[str, float]) -> None:
    logging.info("%s", self.line(step, metrics))

  def update(self, step: int) -> None:
    """Logs the line for count `step` if `every_s` passed since the last (see the class)."""
    now = time.perf_counter()
    due = now - (self._t0 if self._last_line is None else self._last_line) >= self._every_s
    if due or (step >= self.total and self._last_line is not None):
      self._last_line = now
      logging.info("%s", self.line(step, {}, now))


def _duration(seconds: float) -> str:
  if not np.isfinite(seconds):
    return "?"
  minutes, seconds = divmod(int(seconds), 60)
  return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"
