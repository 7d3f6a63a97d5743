"""Tests of the score figures of `figures`: ROC / PR curves match scikit-learn, histograms."""

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
