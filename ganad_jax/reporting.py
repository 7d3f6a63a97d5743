"""Run outputs: atomic files, progress lines, result tables and image grids."""

import json
import logging as logging_std
import os
import tempfile
import time
from typing import BinaryIO, Callable

from absl import logging
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


class _DropOrbaxInfo(logging_std.Filter):

  def filter(self, record):
    return record.levelno >= logging_std.WARNING or "/orbax/" not in record.pathname


def quiet_orbax_logs() -> None:
  """Keeps Orbax's per-save INFO lines out of the log; its warnings still show."""
  logging.get_absl_handler().addFilter(_DropOrbaxInfo())


def tb_tag(name: str) -> str:
  """TensorBoard accepts [A-Za-z0-9_./-] in tags."""
  return name.replace("@", "_at_")


class Progress:
  """Logs step, steps/s and ETA every `every` steps (a TF-free clu.ReportProgress)."""

  def __init__(self, total_steps: int, first_step: int = 0):
    self.total = total_steps
    self._t0, self._s0 = time.perf_counter(), first_step

  def line(self, step: int, metrics: dict[str, float]) -> str:
    elapsed = time.perf_counter() - self._t0
    rate = (step - self._s0) / elapsed if elapsed > 0 else float("nan")
    eta = (self.total - step) / rate if rate > 0 else float("nan")
    values = " ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items()))
    return (f"step {step}/{self.total} ({100 * step / self.total:.0f}%) "
            f"{rate:.2f} steps/s, ETA {_duration(eta)} | {values}")

  def report(self, step: int, metrics: dict[str, float]) -> None:
    logging.info("%s", self.line(step, metrics))


def _duration(seconds: float) -> str:
  if not np.isfinite(seconds):
    return "?"
  minutes, seconds = divmod(int(seconds), 60)
  return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def markdown_table(header: list[str], rows: list[list]) -> str:
  fmt = lambda v: f"{v:.4f}" if isinstance(v, float) else str(v)
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
  return "\n".join(lines)


def results_markdown(results: dict, figures: list[str] | None = None) -> str:
  """A one-run report: metrics per score, data, protocol and timing.

  Args:
    results: the run's `results.json` content.
    figures: PNG paths relative to the run's directory (`viz.write_run_figures`),
      embedded as Markdown images at the end; None or empty embeds none.
  """
  info = results["data"]
  metric_names = sorted({k for m in results["metrics"].values() for k in m})
  rows = [[name] + [m.get(k, "") for k in metric_names]
          for name, m in results["metrics"].items()]
  kinds = results.get("auroc_per_kind", {})
  parts = [
      f"# {results['method']} on {info['source']} ({info['protocol']}, seed {results['seed']})",
      "",
      markdown_table(["score"] + metric_names, rows),
      "",
  ]
  if kinds:
    pixel = results.get("pixel_auroc_per_kind", {})
    parts += ["AUROC of each anomaly kind against the test normals (primary score"
              + ("; pixel AUROC over those images' maps" if pixel else "") + "):", "",
              markdown_table(["kind", "auroc"] + (["pixel_auroc"] if pixel else []),
                             [[k, v] + ([pixel[k]] if pixel else []) for k, v in kinds.items()]),
              ""]
  parts += [
      f"- data: {info['source']}, protocol {info['protocol']}, sizes "
      + ", ".join(f"{k} {v}" for k, v in results["sizes"].items()),
      *[f"- {note}" for note in info.get("notes", [])],
      f"- steps: {results['steps']}, batch {results['batch_size']}",
      f"- wall time: train {results['wall_time_s']['train']:.1f} s, "
      f"score {results['wall_time_s']['score']:.1f} s, total {results['wall_time_s']['total']:.1f} s",
      f"- devices: {results['devices']}",
      "",
  ]
  if figures:
    parts += ["## Figures", ""]
    for path in figures:
      name = os.path.splitext(os.path.basename(path))[0].replace("_", " ")
      parts += [f"![{name}]({path.replace(os.sep, '/')})", ""]
  return "\n".join(parts)


def image_grid(rows: list[np.ndarray]) -> np.ndarray:
  """Stacks rows of images (each (n, H, W[, C]) in [-1, 1], or maps >= 0) into one uint8 HWC grid.

  Maps (no channel axis) are scaled by their row's maximum, so a row of
  residuals is readable next to its inputs.
  """
  out = []
  for row in rows:
    row = np.asarray(row, np.float32)
    if row.ndim == 3:
      row = row / max(float(row.max()), 1e-8) * 2.0 - 1.0
      row = row[..., None]
    if row.shape[-1] == 1:
      row = np.repeat(row, 3, axis=-1)
    row = np.pad(row, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=1.0)
    out.append(np.concatenate(list(row), axis=1))
  grid = np.concatenate(out, axis=0)
  return np.clip((grid + 1.0) * 127.5, 0, 255).astype(np.uint8)
