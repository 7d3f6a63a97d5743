"""Image-level metrics: one score per image (or sample) against its binary label.

Ranking metrics (``auroc``, ``auprc``, ``f1_max``) delegate to scikit-learn;
``threshold_from_normals`` and ``threshold_metrics`` fix and evaluate one
decision threshold.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from sklearn import metrics as sk_metrics

from ganad_jax.metrics import _checks as checks


def auroc(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
  """Area under the ROC curve.

  Identical to ``sklearn.metrics.roc_auc_score`` (tied scores count 1/2).

  Args:
    labels: Binary labels of shape (N,), 1 = anomaly.
    scores: Anomaly scores of shape (N,), higher = more anomalous.

  Returns:
    The AUROC in [0, 1].

  Raises:
    ValueError: On invalid input (see ``ganad_jax.metrics``).
  """
  labels_bool, scores_arr = checks.validate(labels, scores, metric="AUROC", ndim=1)
  return float(sk_metrics.roc_auc_score(labels_bool, scores_arr))


def auprc(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
  """Area under the precision-recall curve, computed as average precision.

  Identical to ``sklearn.metrics.average_precision_score`` (step-wise sum,
  no trapezoidal interpolation) with the anomalous class as positive.

  Args:
    labels: Binary labels of shape (N,), 1 = anomaly.
    scores: Anomaly scores of shape (N,), higher = more anomalous.

  Returns:
    The average precision in [0, 1].

  Raises:
    ValueError: On invalid input (see ``ganad_jax.metrics``).
  """
  labels_bool, scores_arr = checks.validate(labels, scores, metric="AUPRC", ndim=1)
  return float(sk_metrics.average_precision_score(labels_bool, scores_arr))


def f1_max(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
  """Best F1 score over all decision thresholds.

  The candidate thresholds are all distinct score values, with
  ``score >= threshold`` predicted anomalous (the convention of
  ``sklearn.metrics.precision_recall_curve``).

  Args:
    labels: Binary labels of shape (N,), 1 = anomaly.
    scores: Anomaly scores of shape (N,), higher = more anomalous.

  Returns:
    The maximal F1 score in [0, 1].

  Raises:
    ValueError: On invalid input (see ``ganad_jax.metrics``).
  """
  labels_bool, scores_arr = checks.validate(labels, scores, metric="F1-max", ndim=1)
  precision, recall, _ = sk_metrics.precision_recall_curve(labels_bool, scores_arr)
  denom = precision + recall
  f1 = np.divide(
    2.0 * precision * recall,
    denom,
    out=np.zeros_like(denom, dtype=np.float64),
    where=denom > 0,
  )
  return float(f1.max())


def threshold_from_normals(scores: npt.ArrayLike, quantile: float) -> float:
  """Decision threshold as a quantile of the scores of normal data.

  Meant for the scores of a normal-only validation set: with
  ``quantile=0.95`` about 5% of normal samples satisfy
  ``score > threshold`` (the rule used by ``threshold_metrics``). Uses
  ``numpy.quantile`` with its default linear interpolation. Constant scores
  are accepted (the threshold is then that constant).

  Args:
    scores: Scores of normal samples (any shape; flattened).
    quantile: Quantile in the open interval (0, 1).

  Returns:
    The threshold.

  Raises:
    ValueError: If ``quantile`` is not in (0, 1), or ``scores`` is empty or
      contains NaN/Inf.
  """
  if (
    isinstance(quantile, bool)
    or not isinstance(quantile, checks.REAL)
    or not 0.0 < float(quantile) < 1.0
  ):
    raise ValueError(
      f"quantile must be in the open interval (0, 1); got {quantile!r}"
    )
  scores_arr = checks.as_float_array(scores, "scores")
  if scores_arr.size == 0:
    raise ValueError("scores is empty; need the scores of normal samples")
  checks.check_finite(scores_arr, "scores")
  return float(np.quantile(scores_arr, float(quantile)))


def threshold_metrics(
  labels: npt.ArrayLike, scores: npt.ArrayLike, threshold: float
) -> dict[str, float]:
  """Precision, recall, F1 and false-positive rate at a fixed threshold.

  A sample is predicted anomalous iff ``score > threshold``. If no sample is
  predicted anomalous, precision (and hence F1) is reported as 0.0.
  Constant scores are accepted here (the metrics are well defined).

  Args:
    labels: Binary labels of shape (N,), 1 = anomaly; both classes needed.
    scores: Anomaly scores of shape (N,), higher = more anomalous.
    threshold: Finite decision threshold.

  Returns:
    Dict with keys ``"precision"``, ``"recall"``, ``"f1"`` and ``"fpr"``.

  Raises:
    ValueError: On invalid input (see ``ganad_jax.metrics``) or a non-finite
      threshold.
  """
  labels_bool, scores_arr = checks.validate(
    labels, scores, metric="threshold metrics", ndim=1, allow_constant=True
  )
  if (
    isinstance(threshold, bool)
    or not isinstance(threshold, checks.REAL)
    or not math.isfinite(threshold)
  ):
    raise ValueError(f"threshold must be a finite real number; got {threshold!r}")
  predicted = scores_arr > threshold
  tp = int(np.count_nonzero(predicted & labels_bool))
  fp = int(np.count_nonzero(predicted & ~labels_bool))
  n_pos = int(np.count_nonzero(labels_bool))
  n_neg = labels_bool.size - n_pos
  precision = tp / (tp + fp) if tp + fp else 0.0
  recall = tp / n_pos
  f1 = 2.0 * precision * recall / (precision + recall) if tp else 0.0
  return {
    "precision": float(precision),
    "recall": float(recall),
    "f1": float(f1),
    "fpr": float(fp / n_neg),
  }
