"""Tests of `run_outputs`: run files are written atomically (a failed write keeps the good file)."""

import json
import os

from matplotlib.backends import backend_agg
import numpy as np
from PIL import Image
import pytest

from ganad_jax.figures import _canvas as figures_canvas
from ganad_jax import run_outputs
from ganad_jax import run_report


@pytest.mark.parametrize("failure", ["dumps", "fsync", "replace", "nan"])
def test_interrupted_write_json_keeps_the_previous_file(tmp_path, monkeypatch, failure):
  path = str(tmp_path / "results.json")
  run_outputs.write_json(path, {"auroc": 0.75})
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
    run_outputs.write_json(path, new)
  monkeypatch.undo()
  with open(path, encoding="utf-8") as f:
    assert f.read() == before
  assert os.listdir(tmp_path) == ["results.json"]  # No temporary file left behind.


def _files(directory):
  return sorted(os.listdir(directory))


def test_a_failed_figure_save_keeps_the_good_file(tmp_path, monkeypatch):
  fig = figures_canvas.new_figure(2, 2)
  fig.add_subplot().plot([0, 1], [0, 1])
  path = str(tmp_path / 'figures' / 'roc.png')
  run_outputs.save_png(fig, path)  # Creates figures/.
  good = open(path, 'rb').read()
  assert good.startswith(b'\x89PNG') and oct(os.stat(path).st_mode & 0o777) == '0o644'

  def half_then_fail(self, f, **kwargs):
    f.write(b'\x89PNG half a figure')
    raise RuntimeError('renderer died')

  monkeypatch.setattr(backend_agg.FigureCanvasAgg, 'print_png', half_then_fail)
  with pytest.raises(RuntimeError, match='renderer died'):
    run_outputs.save_png(fig, path)
  assert open(path, 'rb').read() == good
  assert _files(tmp_path / 'figures') == ['roc.png']  # No temporary file left.


def test_a_failed_image_or_npz_save_keeps_the_good_file(tmp_path, monkeypatch):
  path = str(tmp_path / 'reconstructions.png')
  grid = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
  run_outputs.save_image(path, grid)
  np.testing.assert_array_equal(np.asarray(Image.open(path)), grid)
  good = open(path, 'rb').read()
  scores = str(tmp_path / 'scores.npz')
  run_outputs.save_npz(scores, {'score': np.ones(3, np.float32)})
  good_scores = open(scores, 'rb').read()

  def half_then_fail(self, f, *args, **kwargs):
    f.write(b'partial')
    raise OSError('disk full')

  monkeypatch.setattr(Image.Image, 'save', half_then_fail)
  with pytest.raises(OSError, match='disk full'):
    run_outputs.save_image(path, grid * 2)
  monkeypatch.setattr(np, 'savez', lambda f, **arrays: half_then_fail(None, f))
  with pytest.raises(OSError, match='disk full'):
    run_report.save_scores(scores, [0, 1, 1], {'score': np.zeros(3)})
  assert open(path, 'rb').read() == good and open(scores, 'rb').read() == good_scores
  assert _files(tmp_path) == ['reconstructions.png', 'scores.npz']
  with pytest.raises(ValueError, match=r'Cannot tell the image format of .*grid\.xyz'):
    run_outputs.save_image(str(tmp_path / 'grid.xyz'), grid)


def test_progress_update_logs_at_most_every_interval_and_the_end(monkeypatch):
  clock = iter([0.0, 4.0, 11.0, 15.0, 30.0])  # Construction, then one reading per update.
  monkeypatch.setattr(run_outputs.time, "perf_counter", lambda: next(clock))
  lines = []
  monkeypatch.setattr(run_outputs.logging, "info", lambda fmt, *a: lines.append(fmt % a))
  progress = run_outputs.Progress(40, unit="image", label="padim fit: embeddings")
  for done in (10, 20, 30, 40):  # At 4 s: not due; 11 s: due; 15 s: not; the end: logged.
    progress.update(done)
  assert [l.split(" (")[0] for l in lines] == ["padim fit: embeddings: image 20/40",
                                               "padim fit: embeddings: image 40/40"]
  assert lines[0].endswith("(50%) 1.82 images/s, ETA 11s")
  monkeypatch.setattr(run_outputs.time, "perf_counter", lambda: 5.0)
  run_outputs.Progress(40, every_s=1e9).update(40)  # A loop shorter than the interval: no line.
  assert len(lines) == 2
  assert run_outputs.Progress(10).line(4, {"loss": 0.5}).startswith("step 4/10 (40%) ")
  assert run_outputs.Progress(10).line(4, {"loss": 0.5}).endswith(" | loss=0.5")
