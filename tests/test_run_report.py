"""Tests of `run_report`: a run's figures, scores.npz, TensorBoard images and benchmark overlays."""

import os
import subprocess
import sys

import numpy as np
from PIL import Image
import tensorboardX

from ganad_jax import figures
from ganad_jax import result_tables
from ganad_jax import run_outputs
from ganad_jax import run_report
from ganad_jax.data import splits as splits_lib
import harness
import helpers


def test_save_png_and_tensorboard(tmp_path):
  labels, scores = helpers.scores()
  fig = figures.roc_pr_figure(labels, scores)
  path = str(tmp_path / "sub" / "roc.png")
  run_outputs.save_png(fig, path)
  with Image.open(path) as image:
    assert image.format == "PNG" and image.size == (900, 440)
  rgb = figures.to_rgb_array(fig)
  assert rgb.shape == (440, 900, 3) and rgb.dtype == np.uint8 and rgb.std() > 10
  with tensorboardX.SummaryWriter(str(tmp_path / "tb")) as writer:
    run_report.add_to_writer(writer, "figures/roc@x", fig, 3)
  assert os.listdir(tmp_path / "tb")


def test_write_run_figures_images_with_masks(tmp_path):
  split, out = helpers.masked_split()
  val = {"score": out["score"][split.y == 0]}
  metrics = {"metrics": {"score": {"auroc": 1.0}}, "thresholds": {"score": 0.3}}
  images = []

  class Writer:

    def add_image(self, tag, image, step, dataformats):
      images.append((tag, image.shape, step, dataformats))

  paths = run_report.write_run_figures(str(tmp_path), split, out, val, metrics, None,
                                       writer=Writer(), step=7, tsne_points=50)
  assert paths == [f"figures/{n}.png" for n in ("roc_pr", "roc_pr_scores", "score_hist",
                                                  "reconstructions", "anomaly_maps", "tsne")]
  for path in paths:
    with Image.open(tmp_path / path) as image:
      assert image.size[0] > 300
  assert [t for t, *_ in images] == [f"figures/{os.path.basename(p)[:-4]}" for p in paths]
  assert all(step == 7 and fmt == "HWC" for _, _, step, fmt in images)
  saved = run_report.load_scores(str(tmp_path / "scores.npz"))
  np.testing.assert_array_equal(saved["y"], split.y)
  np.testing.assert_allclose(saved["score_max"], out["score_max"], rtol=1e-6)
  assert saved["kinds"].tolist() == split.kinds.tolist()
  results = {"method": "ae", "seed": 0, "steps": 1, "batch_size": 2, "devices": "cpu",
             "data": {"source": "digits", "protocol": "anomaly_class"},
             "metrics": {"score": {"auroc": 1.0}}, "sizes": {"test": 12},
             "wall_time_s": {"train": 1.0, "score": 1.0, "total": 2.0}}
  text = result_tables.results_markdown(results, paths)
  assert "![anomaly maps](figures/anomaly_maps.png)" in text
  assert "![" not in result_tables.results_markdown(results)


def test_write_run_figures_tabular_and_no_test(tmp_path):
  labels, scores = helpers.scores()
  x = np.random.default_rng(0).normal(size=(60, 5)).astype(np.float32)
  split = splits_lib.Split(x=x, y=labels, kinds=labels.astype(str))
  paths = run_report.write_run_figures(str(tmp_path), split, {"score": scores}, None, None, 0.5,
                                tsne_points=40)
  assert paths == ["figures/roc_pr.png", "figures/score_hist.png", "figures/tsne.png"]
  assert run_report.write_run_figures(str(tmp_path / "none"), None, {}, None, None, None) == []


def test_benchmark_overlays_from_run_dirs(tmp_path):
  root = tmp_path / "bench"
  for method in ("ae", "ssim_ae"):
    for seed in (0, 1):
      labels, scores = helpers.scores(seed=seed, shift=1.0 if method == "ae" else 2.0)
      run_report.save_scores(str(root / method / "3" / f"seed{seed}" / "scores.npz"), labels,
                      {"score": scores})
  (root / "ae" / "4" / "seed0").mkdir(parents=True)  # A run without scores: skipped.
  assert run_report.benchmark_figures(str(root)) == ["figures/roc_3.png"]
  assert os.path.exists(root / "figures" / "roc_3.png")
  result = subprocess.run(
      [sys.executable, os.path.join(harness.REPO, "experiments", "plot_benchmark.py"),
       f"--root={root}"], capture_output=True, text=True, check=True)
  assert "![figures/roc_3.png](figures/roc_3.png)" in result.stdout
