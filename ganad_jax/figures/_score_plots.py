"""Figures of raw anomaly scores against labels: ROC / PR curves and score histograms."""

import numpy as np
from matplotlib import colors as mcolors
from matplotlib import figure as mfigure
from sklearn import metrics as sk_metrics

from ganad_jax import metrics as metrics_lib
from ganad_jax.figures import _canvas as canvas


def _binary(labels, scores, what: str) -> tuple[np.ndarray, np.ndarray]:
  labels = np.asarray(labels).astype(np.int64).reshape(-1)
  scores = np.asarray(scores, np.float64).reshape(-1)
  if labels.shape != scores.shape:
    raise ValueError(f"{what}: labels {labels.shape} and scores {scores.shape} differ in length.")
  return labels, scores


def _roc_pr_axes(fig: mfigure.Figure):
  ax_roc, ax_pr = fig.subplots(1, 2)
  ax_roc.plot([0, 1], [0, 1], ls=":", color="gray", lw=1, label="chance")
  ax_roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC",
             xlim=(0, 1), ylim=(0, 1.01), aspect="equal")
  ax_pr.set(xlabel="recall", ylabel="precision", title="precision-recall",
            xlim=(0, 1), ylim=(0, 1.01), aspect="equal")
  for ax in (ax_roc, ax_pr):
    ax.grid(alpha=0.3)
  return ax_roc, ax_pr


def _draw_curves(ax_roc, ax_pr, labels, scores, color, label_prefix: str, lw=1.8, alpha=1.0,
                 with_label=True):
  auroc = metrics_lib.auroc(labels, scores)  # Raises on NaN, constant scores, one class.
  auprc = metrics_lib.auprc(labels, scores)
  fpr, tpr, _ = sk_metrics.roc_curve(labels, scores)
  precision, recall, _ = sk_metrics.precision_recall_curve(labels, scores)
  ax_roc.plot(fpr, tpr, color=color, lw=lw, alpha=alpha,
              label=f"{label_prefix}AUROC {auroc:.3f}" if with_label else None)
  ax_pr.step(recall, precision, where="post", color=color, lw=lw, alpha=alpha,
             label=f"{label_prefix}AUPRC {auprc:.3f}" if with_label else None)
  return auroc, auprc


def roc_pr_figure(labels, scores, title: str = "") -> mfigure.Figure:
  """ROC and precision-recall curves of one set of raw scores (higher = more anomalous).

  Args:
    labels: (N,) 1 = anomaly.
    scores: (N,) raw anomaly scores.
    title: figure title.

  Returns:
    A figure with the ROC (with the chance diagonal) and the PR curve (with the
    chance level, the fraction of anomalies); AUROC / AUPRC in the legends.
  """
  labels, scores = _binary(labels, scores, "roc_pr_figure")
  fig = canvas.new_figure(9, 4.4)
  ax_roc, ax_pr = _roc_pr_axes(fig)
  _draw_curves(ax_roc, ax_pr, labels, scores, canvas.ANOMALY_COLOR, "")
  ax_pr.axhline(labels.mean(), ls=":", color="gray", lw=1,
                label=f"chance {labels.mean():.3f}")
  ax_roc.legend(loc="lower right")
  ax_pr.legend(loc="lower left")
  if title:
    fig.suptitle(title)
  return fig


def overlay_curves_figure(curves: dict, title: str = "") -> mfigure.Figure:
  """ROC and PR curves of several methods (or scores) on the same axes.

  Args:
    curves: name -> (labels, scores), or name -> a list of (labels, scores)
      (e.g. one per seed: each is drawn thin in the method's colour and the
      legend gives the mean +- std of AUROC / AUPRC over the list).
    title: figure title.

  Returns:
    The figure.
  """
  if not curves:
    raise ValueError("overlay_curves_figure needs at least one (labels, scores) entry.")
  fig = canvas.new_figure(10, 4.8)
  ax_roc, ax_pr = _roc_pr_axes(fig)
  palette = list(mcolors.TABLEAU_COLORS.values())
  positive_rates = []
  for i, (name, runs) in enumerate(curves.items()):
    runs = [runs] if isinstance(runs, tuple) else list(runs)
    color = palette[i % len(palette)]
    if len(runs) == 1:
      labels, scores = _binary(*runs[0], f"curves[{name!r}]")
      _draw_curves(ax_roc, ax_pr, labels, scores, color, f"{name}: ")
      positive_rates.append(labels.mean())
      continue
    aurocs, auprcs = [], []
    for labels, scores in runs:
      labels, scores = _binary(labels, scores, f"curves[{name!r}]")
      a, p = _draw_curves(ax_roc, ax_pr, labels, scores, color, "", lw=1.0, alpha=0.7,
                          with_label=False)
      aurocs.append(a)
      auprcs.append(p)
      positive_rates.append(labels.mean())
    n = len(runs)
    ax_roc.plot([], [], color=color,
                label=f"{name}: AUROC {np.mean(aurocs):.3f} ± {np.std(aurocs):.3f} ({n} runs)")
    ax_pr.plot([], [], color=color,
               label=f"{name}: AUPRC {np.mean(auprcs):.3f} ± {np.std(auprcs):.3f} ({n} runs)")
  if np.ptp(positive_rates) < 1e-9:  # One chance level only when every run shares it.
    ax_pr.axhline(positive_rates[0], ls=":", color="gray", lw=1,
                  label=f"chance {positive_rates[0]:.3f}")
  ax_roc.legend(loc="best", fontsize="small")  # Curves below chance must stay visible.
  ax_pr.legend(loc="best", fontsize="small")
  if title:
    fig.suptitle(title)
  return fig


def score_histogram_figure(labels, scores, threshold: float | None = None, val_scores=None,
                           title: str = "", threshold_label: str = "threshold") -> mfigure.Figure:
  """Histograms of the raw scores of normal and anomalous test data, with the threshold.

  Args:
    labels: (N,) 1 = anomaly.
    scores: (N,) raw anomaly scores.
    threshold: drawn as a vertical dashed line when given.
    val_scores: optional validation-normal scores, drawn as an outline.
    title: figure title.
    threshold_label: legend text of the threshold line.

  Returns:
    The figure. Each histogram shows the fraction of its class per bin (the
    classes differ in size); the x axis and bins are logarithmic when every
    score is positive and they span more than three decades.
  """
  labels, scores = _binary(labels, scores, "score_histogram_figure")
  every = [scores] + ([np.asarray(val_scores, np.float64).ravel()] if val_scores is not None
                      else [])
  if threshold is not None:
    every.append(np.asarray([threshold], np.float64))
  every = np.concatenate(every)
  if not np.all(np.isfinite(every)):
    raise ValueError("score_histogram_figure: scores, val_scores or threshold hold NaN/Inf.")
  lo, hi = float(every.min()), float(every.max())
  log_x = lo > 0 and hi / lo > 1e3
  if log_x:
    bins = np.geomspace(lo, hi, 41)
  else:
    bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 41)
  fig = canvas.new_figure(7, 4.2)
  ax = fig.subplots()
  for value, name, color in ((0, "normal", canvas.NORMAL_COLOR),
                             (1, "anomalous", canvas.ANOMALY_COLOR)):
    selected = scores[labels == value]
    if len(selected):
      ax.hist(selected, bins=bins, weights=np.full(len(selected), 1.0 / len(selected)),
              alpha=0.5, color=color, label=f"test {name} (n={len(selected)})")
  if val_scores is not None:
    val_scores = np.asarray(val_scores, np.float64).ravel()
    ax.hist(val_scores, bins=bins, weights=np.full(len(val_scores), 1.0 / len(val_scores)),
            histtype="step", color="black", lw=1.2, label=f"val normal (n={len(val_scores)})")
  if threshold is not None:
    ax.axvline(threshold, color="black", ls="--", lw=1.5,
               label=f"{threshold_label} = {threshold:.4g}")
  if log_x:
    ax.set_xscale("log")
  ax.set(xlabel="anomaly score (raw, higher = more anomalous)",
         ylabel="fraction of the class per bin")
  ax.legend(fontsize="small")
  ax.grid(alpha=0.3)
  if title:
    ax.set_title(title)
  return fig
