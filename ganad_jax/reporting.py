"""Run outputs: atomic files, progress lines, result tables and image grids."""

import json
import logging as logging_std
import os
import tempfile
import time

from absl import logging
import numpy as np


def write_atomic(path: str, text: str) -> None:
  """Writes `text` to `path` via a temporary file and a rename: never half-written."""
  directory = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.")
  try:
    with os.fdopen(fd, "w", encoding="utf-8") as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def write_json(path: str, obj) -> None:
  write_atomic(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


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
    parts += ["AUROC of each anomaly kind against the test normals (primary score):", "",
              markdown_table(["kind", "auroc"], [[k, v] for k, v in kinds.items()]), ""]
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
