"""Tests of `figures`: curves match scikit-learn, maps align with masks, grids, t-SNE, walks."""

import numpy as np
import pytest
from sklearn import metrics as sk_metrics

from ganad_jax import figures
import helpers


def _line_data(ax):
  return {line.get_label(): (line.get_xdata(), line.get_ydata()) for line in ax.get_lines()}


def test_roc_pr_curves_are_sklearns_and_labelled():
  labels, scores = helpers.scores()
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
  runs = [helpers.scores(seed=s) for s in range(3)]
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
  labels, scores = helpers.scores()
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


def test_heatmap_aligns_map_and_mask():
  split, out = helpers.masked_split()
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
  split, out = helpers.masked_split()
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
