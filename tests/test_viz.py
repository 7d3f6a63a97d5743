"""Figures: curves match scikit-learn, maps align with masks, files and TensorBoard images."""

import os
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest
from sklearn import metrics as sk_metrics
import tensorboardX

from ganad_jax import figures
from ganad_jax import report
from ganad_jax import reporting
from ganad_jax import tables
from ganad_jax.data import splits as splits_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _scores(n=60, shift=1.5, seed=0):
  rng = np.random.default_rng(seed)
  labels = (np.arange(n) % 3 == 0).astype(np.int32)
  return labels, rng.normal(size=n) + shift * labels


def _line_data(ax):
  return {line.get_label(): (line.get_xdata(), line.get_ydata()) for line in ax.get_lines()}


def test_roc_pr_curves_are_sklearns_and_labelled():
  labels, scores = _scores()
  fig = figures.roc_pr_figure(labels, scores, title="t")
  ax_roc, ax_pr = fig.axes
  auroc = sk_metrics.roc_auc_score(labels, scores)
  lines = _line_data(ax_roc)
  fpr, tpr, _ = sk_metrics.roc_curve(labels, scores)
  np.testing.assert_allclose(lines[f"AUROC {auroc:.3f}"][0], fpr)
  np.testing.assert_allclose(lines[f"AUROC {auroc:.3f}"][1], tpr)
  precision, recall, _ = sk_metrics.precision_recall_curve(labels, scores)
  ap = sk_metrics.average_precision_score(labels, scores)
  np.testing.assert_allclose(_line_data(ax_pr)[f"AUPRC {ap:.3f}"][0], recall)
  assert ax_roc.get_xlabel() == "false positive rate" and ax_pr.get_ylabel() == "precision"
  assert f"chance {labels.mean():.3f}" in _line_data(ax_pr)  # The PR chance level.
  with pytest.raises(ValueError, match="NaN"):
    figures.roc_pr_figure(labels, np.where(labels, np.nan, 0.0))


def test_overlay_draws_one_colour_per_method_and_mean_std_over_seeds():
  runs = [_scores(seed=s) for s in range(3)]
  fig = figures.overlay_curves_figure({"a": runs[0], "b": runs})
  ax_roc = fig.axes[0]
  legend = [t.get_text() for t in ax_roc.get_legend().get_texts()]
  aurocs = [sk_metrics.roc_auc_score(*r) for r in runs]
  assert f"a: AUROC {aurocs[0]:.3f}" in legend
  assert f"b: AUROC {np.mean(aurocs):.3f} ± {np.std(aurocs):.3f} (3 runs)" in legend
  colours = {line.get_label(): line.get_color() for line in ax_roc.get_lines()}
  seed_lines = [line for line in ax_roc.get_lines() if line.get_label().startswith("_")]
  assert len(seed_lines) == 3
  assert all(line.get_color() == seed_lines[0].get_color() for line in seed_lines)
  assert colours[f"a: AUROC {aurocs[0]:.3f}"] != seed_lines[0].get_color()


def test_histogram_has_threshold_line_and_both_classes():
  labels, scores = _scores()
  fig = figures.score_histogram_figure(labels, scores, threshold=0.7,
                                       val_scores=scores[labels == 0])
  ax = fig.axes[0]
  threshold_lines = [line for line in ax.get_lines() if line.get_label().startswith("threshold")]
  assert len(threshold_lines) == 1 and threshold_lines[0].get_xdata()[0] == 0.7
  legend = [t.get_text() for t in ax.get_legend().get_texts()]
  assert "test normal (n=40)" in legend and "test anomalous (n=20)" in legend
  assert "val normal (n=40)" in legend
  # Scores over many decades get a log axis.
  wide = figures.score_histogram_figure(labels, np.exp(scores * 5.0))
  assert wide.axes[0].get_xscale() == "log"


def _masked_split(n=12, size=16):
  rng = np.random.default_rng(0)
  x = rng.uniform(-1, -0.5, size=(n, size, size, 1)).astype(np.float32)
  y = (np.arange(n) % 2).astype(np.int32)
  masks = np.zeros((n, size, size), np.float32)
  for i in np.flatnonzero(y):
    r, c = 2 + i % 8, 9 - i % 7
    masks[i, r:r + 4, c:c + 3] = 1.0
  x[masks > 0] = 1.0
  recon = np.full_like(x, -0.75)
  maps = np.mean((x - recon) ** 2, axis=-1)
  split = splits_lib.Split(x=x, y=y, kinds=np.where(y == 1, "bar", "good"), masks=masks)
  outputs = {"score": maps.mean(axis=(1, 2)), "score_max": maps.max(axis=(1, 2)),
             "recon": recon, "map": maps}
  return split, outputs


def test_heatmap_aligns_map_and_mask():
  split, out = _masked_split()
  idx = figures.pick_examples(split.y, 4, prefer=split.masks.max(axis=(1, 2)) > 0)
  assert split.y[idx].tolist() == [0, 0, 1, 1]
  fig = figures.heatmap_figure(split.x[idx], out["map"][idx], split.masks[idx], split.y[idx])
  axes = np.asarray(fig.axes[:16]).reshape(4, 4)
  for row, i in enumerate(idx):
    mask_img = axes[row, 1].get_images()[0]
    map_img = axes[row, 2].get_images()[0]
    np.testing.assert_array_equal(mask_img.get_array(), split.masks[i])
    np.testing.assert_array_equal(map_img.get_array(), out["map"][i])
    extents = {tuple(im.get_extent()) for ax in axes[row] for im in ax.get_images()}
    assert len(extents) == 1  # Same pixel grid and orientation in every column.
    if split.y[i]:
      # The map's hottest pixels lie inside the mask.
      assert split.masks[i][out["map"][i] >= out["map"][i].max() - 1e-6].all()
      assert axes[row, 3].collections  # The mask outline drawn over the map.
  assert axes[0, 1].get_title() == "ground-truth mask"


def test_reconstruction_grid_rows_and_errors():
  split, out = _masked_split()
  fig = figures.reconstruction_figure(split.x[:5], out["recon"][:5], labels=split.y[:5],
                                  scores=out["score"][:5])
  image_axes = [ax for ax in fig.axes if ax.get_images()]
  assert len(image_axes) == 15
  assert [image_axes[i].get_ylabel() for i in (0, 5, 10)] == ["input", "reconstruction",
                                                              "residual"]
  with pytest.raises(ValueError, match="differ in shape"):
    figures.reconstruction_figure(split.x[:5], out["recon"][:4])
  with pytest.raises(ValueError, match=r"\(N, H, W, C\)"):
    figures.reconstruction_figure(split.x[:5, ..., 0], out["recon"][:5])


def test_tsne_colours_classes_and_subsamples():
  rng = np.random.default_rng(0)
  labels = np.repeat([0, 1], [40, 20])
  features = rng.normal(size=(60, 8)) + 4.0 * labels[:, None]
  fig = figures.tsne_figure(features, labels, max_points=50)
  sizes = [len(c.get_offsets()) for c in fig.axes[0].collections]
  assert sum(sizes) == 50 and len(sizes) == 2
  with pytest.raises(ValueError, match="NaN"):
    figures.tsne_figure(np.full((10, 2), np.nan), np.zeros(10))


def test_latent_walk_interpolates_between_the_endpoints():
  seen = []

  def generate(z):
    seen.append(np.asarray(z))
    return np.tanh(np.repeat(z[:, :1, None, None], 16, axis=1).repeat(16, axis=2))

  z0, z1 = np.zeros(4), np.ones(4)
  fig = figures.latent_walk_figure(generate, z0, z1, steps=5)
  np.testing.assert_allclose(seen[0][0], z0)
  np.testing.assert_allclose(seen[0][-1], z1)
  np.testing.assert_allclose(seen[0][:, 0], np.linspace(0, 1, 5), rtol=1e-6)
  assert [ax.get_xlabel() for ax in fig.axes] == [f"t={t:.2f}" for t in np.linspace(0, 1, 5)]
  vectors = figures.latent_walk_figure(lambda z: np.tile(z, (1, 3)), z0, z1, steps=3)
  assert vectors.axes[0].get_images()[0].get_array().shape == (3, 12)


def test_save_png_and_tensorboard(tmp_path):
  labels, scores = _scores()
  fig = figures.roc_pr_figure(labels, scores)
  path = str(tmp_path / "sub" / "roc.png")
  reporting.save_png(fig, path)
  with Image.open(path) as image:
    assert image.format == "PNG" and image.size == (900, 440)
  rgb = figures.to_rgb_array(fig)
  assert rgb.shape == (440, 900, 3) and rgb.dtype == np.uint8 and rgb.std() > 10
  with tensorboardX.SummaryWriter(str(tmp_path / "tb")) as writer:
    report.add_to_writer(writer, "figures/roc@x", fig, 3)
  assert os.listdir(tmp_path / "tb")


def test_write_run_figures_images_with_masks(tmp_path):
  split, out = _masked_split()
  val = {"score": out["score"][split.y == 0]}
  metrics = {"metrics": {"score": {"auroc": 1.0}}, "thresholds": {"score": 0.3}}
  images = []

  class Writer:

    def add_image(self, tag, image, step, dataformats):
      images.append((tag, image.shape, step, dataformats))

  paths = report.write_run_figures(str(tmp_path), split, out, val, metrics, None, writer=Writer(),
                                step=7, tsne_points=50)
  assert paths == [f"figures/{n}.png" for n in ("roc_pr", "roc_pr_scores", "score_hist",
                                                  "reconstructions", "anomaly_maps", "tsne")]
  for path in paths:
    with Image.open(tmp_path / path) as image:
      assert image.size[0] > 300
  assert [t for t, *_ in images] == [f"figures/{os.path.basename(p)[:-4]}" for p in paths]
  assert all(step == 7 and fmt == "HWC" for _, _, step, fmt in images)
  saved = report.load_scores(str(tmp_path / "scores.npz"))
  np.testing.assert_array_equal(saved["y"], split.y)
  np.testing.assert_allclose(saved["score_max"], out["score_max"], rtol=1e-6)
  assert saved["kinds"].tolist() == split.kinds.tolist()
  results = {"method": "ae", "seed": 0, "steps": 1, "batch_size": 2, "devices": "cpu",
             "data": {"source": "digits", "protocol": "anomaly_class"},
             "metrics": {"score": {"auroc": 1.0}}, "sizes": {"test": 12},
             "wall_time_s": {"train": 1.0, "score": 1.0, "total": 2.0}}
  text = tables.results_markdown(results, paths)
  assert "![anomaly maps](figures/anomaly_maps.png)" in text
  assert "![" not in tables.results_markdown(results)


def test_write_run_figures_tabular_and_no_test(tmp_path):
  labels, scores = _scores()
  x = np.random.default_rng(0).normal(size=(60, 5)).astype(np.float32)
  split = splits_lib.Split(x=x, y=labels, kinds=labels.astype(str))
  paths = report.write_run_figures(str(tmp_path), split, {"score": scores}, None, None, 0.5,
                                tsne_points=40)
  assert paths == ["figures/roc_pr.png", "figures/score_hist.png", "figures/tsne.png"]
  assert report.write_run_figures(str(tmp_path / "none"), None, {}, None, None, None) == []


def test_benchmark_overlays_from_run_dirs(tmp_path):
  root = tmp_path / "bench"
  for method in ("ae", "ssim_ae"):
    for seed in (0, 1):
      labels, scores = _scores(seed=seed, shift=1.0 if method == "ae" else 2.0)
      report.save_scores(str(root / method / "3" / f"seed{seed}" / "scores.npz"), labels,
                      {"score": scores})
  (root / "ae" / "4" / "seed0").mkdir(parents=True)  # A run without scores: skipped.
  assert report.benchmark_figures(str(root)) == ["figures/roc_3.png"]
  assert os.path.exists(root / "figures" / "roc_3.png")
  result = subprocess.run([sys.executable, os.path.join(REPO, "experiments", "plot_benchmark.py"),
                           f"--root={root}"], capture_output=True, text=True, check=True)
  assert "![figures/roc_3.png](figures/roc_3.png)" in result.stdout
