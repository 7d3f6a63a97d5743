"""Evaluation metrics for anomaly detection.

Conventions used throughout this module:

* Labels / masks are binary with ``1`` = anomalous (defect) and ``0`` = normal.
  Boolean arrays and integer or float arrays holding only 0 and 1 are accepted.
* Scores / anomaly maps are real numbers; a *higher* value means *more
  anomalous*.
* Invalid input (mismatched shapes, NaN/Inf scores, constant scores,
  non-binary labels, a single class present) raises ``ValueError`` with a
  message naming the offending argument; metrics are never silently faked.

Image-level ranking metrics (``auroc``, ``auprc``, ``f1_max``) delegate to
scikit-learn. The pixel-level metrics (``pixel_auroc``, ``aupro``) are exact
sort-based numpy implementations (ties handled like scikit-learn and the
MVTec AD reference code) that stay fast and memory-friendly on tens of
millions of pixels (e.g. 600 x 256 x 256 float32 maps).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from sklearn import metrics as sk_metrics

# Connectivity used for ground-truth regions in ``pro_curve`` / ``aupro``:
# 8-connectivity within each image (the MVTec AD reference code calls
# ``scipy.ndimage.label(gt_map, np.ones((3, 3)))`` per image). Applied to the
# whole (N, H, W) stack at once; the outer slices of the 3x3x3 structure are
# zero, so regions never connect across images.
_REGION_STRUCTURE = np.zeros((3, 3, 3), dtype=bool)
_REGION_STRUCTURE[1] = True

_REAL = (int, float, np.integer, np.floating)


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------


def _as_float_array(values: npt.ArrayLike, name: str) -> np.ndarray:
  """Converts ``values`` to a floating-point array, copying only if needed.

  Floating dtypes are kept (a float32 map stack stays float32); booleans and
  integers are converted to float64.

  Args:
    values: Array-like of scores.
    name: Argument name used in error messages.

  Returns:
    A floating-point numpy array.

  Raises:
    ValueError: If ``values`` is not real-valued numeric.
  """
  arr = np.asarray(values)
  if arr.dtype.kind == "f":
    return arr
  if arr.dtype.kind in "biu":
    return arr.astype(np.float64)
  raise ValueError(
    f"{name} must be a real-valued numeric array; got dtype {arr.dtype}"
  )


def _check_finite(values: np.ndarray, name: str) -> None:
  """Raises ``ValueError`` (with counts) if ``values`` has NaN or Inf entries."""
  if not np.isfinite(values).all():
    n_nan = int(np.count_nonzero(np.isnan(values)))
    n_inf = int(np.count_nonzero(np.isinf(values)))
    raise ValueError(
      f"{name} contains {n_nan} NaN and {n_inf} Inf value(s) out of "
      f"{values.size}; all {name} must be finite"
    )


def _validate(
  labels: npt.ArrayLike,
  scores: npt.ArrayLike,
  *,
  metric: str,
  labels_name: str = "labels",
  scores_name: str = "scores",
  ndim: int | None = None,
  allow_constant: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
  """Shared input validation for all metrics that take labels and scores.

  Args:
    labels: Binary labels / masks (1 = anomaly).
    scores: Scores / anomaly maps (higher = more anomalous).
    metric: Metric name used in error messages (e.g. ``"AUROC"``).
    labels_name: Argument name of ``labels`` for error messages.
    scores_name: Argument name of ``scores`` for error messages.
    ndim: If given, the required number of dimensions.
    allow_constant: Whether constant scores are acceptable.

  Returns:
    ``(labels, scores)``: a boolean array (True = anomaly) and a
    floating-point array of the same shape.

  Raises:
    ValueError: On mismatched shapes, wrong number of dimensions, empty
      input, NaN/Inf or constant scores, non-binary labels, or if only
      one class is present.
  """
  labels_arr = np.asarray(labels)
  scores_arr = _as_float_array(scores, scores_name)

  if labels_arr.shape != scores_arr.shape:
    raise ValueError(
      f"{labels_name} and {scores_name} must have the same shape; got "
      f"{labels_name}.shape={labels_arr.shape} and "
      f"{scores_name}.shape={scores_arr.shape}"
    )
  if ndim is not None and scores_arr.ndim != ndim:
    raise ValueError(
      f"{labels_name} and {scores_name} must be {ndim}-dimensional; got "
      f"shape {scores_arr.shape}"
    )
  if scores_arr.size == 0:
    raise ValueError(f"{labels_name} and {scores_name} are empty")

  _check_finite(scores_arr, scores_name)

  if not allow_constant:
    lo, hi = scores_arr.min(), scores_arr.max()
    if lo == hi:
      raise ValueError(
        f"{scores_name} are constant (all = {lo.item()!r}); {metric} is "
        f"undefined/meaningless for constant {scores_name}"
      )

  if labels_arr.dtype == np.bool_:
    labels_bool = labels_arr
  elif labels_arr.dtype.kind in "iuf":
    labels_bool = labels_arr == 1
    non_binary = ~(labels_bool | (labels_arr == 0))
    if non_binary.any():
      bad_values = np.unique(labels_arr[non_binary])[:10].tolist()
      raise ValueError(
        f"{labels_name} must be binary with values in {{0, 1}} "
        f"(1 = anomaly); found non-binary value(s) {bad_values} "
        f"(convert e.g. 0/255 masks with `{labels_name} > 0`)"
      )
  else:
    raise ValueError(
      f"{labels_name} must be binary with values in {{0, 1}} "
      f"(1 = anomaly); got dtype {labels_arr.dtype}"
    )

  n_pos = int(np.count_nonzero(labels_bool))
  if n_pos == 0:
    raise ValueError(
      f"{labels_name} contain only normals (0); need both normal and "
      f"anomalous samples to compute {metric}"
    )
  if n_pos == labels_bool.size:
    raise ValueError(
      f"{labels_name} contain only anomalies (1); need both normal and "
      f"anomalous samples to compute {metric}"
    )
  return labels_bool, scores_arr


# ---------------------------------------------------------------------------
# Image-level metrics
# ---------------------------------------------------------------------------


def auroc(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
  """Area under the ROC curve.

  Identical to ``sklearn.metrics.roc_auc_score`` (tied scores count 1/2).

  Args:
    labels: Binary labels of shape (N,), 1 = anomaly.
    scores: Anomaly scores of shape (N,), higher = more anomalous.

  Returns:
    The AUROC in [0, 1].

  Raises:
    ValueError: On invalid input (see module docstring).
  """
  labels_bool, scores_arr = _validate(labels, scores, metric="AUROC", ndim=1)
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
    ValueError: On invalid input (see module docstring).
  """
  labels_bool, scores_arr = _validate(labels, scores, metric="AUPRC", ndim=1)
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
    ValueError: On invalid input (see module docstring).
  """
  labels_bool, scores_arr = _validate(labels, scores, metric="F1-max", ndim=1)
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
    or not isinstance(quantile, _REAL)
    or not 0.0 < float(quantile) < 1.0
  ):
    raise ValueError(
      f"quantile must be in the open interval (0, 1); got {quantile!r}"
    )
  scores_arr = _as_float_array(scores, "scores")
  if scores_arr.size == 0:
    raise ValueError("scores is empty; need the scores of normal samples")
  _check_finite(scores_arr, "scores")
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
    ValueError: On invalid input (see module docstring) or a non-finite
      threshold.
  """
  labels_bool, scores_arr = _validate(
    labels, scores, metric="threshold metrics", ndim=1, allow_constant=True
  )
  if (
    isinstance(threshold, bool)
    or not isinstance(threshold, _REAL)
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


# ---------------------------------------------------------------------------
# Pixel-level metrics
# ---------------------------------------------------------------------------


def pixel_auroc(masks: npt.ArrayLike, maps: npt.ArrayLike) -> float:
  """AUROC over all pixels of all images (pixel-wise ROC AUC).

  Equals ``sklearn.metrics.roc_auc_score(masks.ravel(), maps.ravel())`` up to
  floating-point rounding (ties count 1/2), computed as a Mann-Whitney U
  statistic in exact integer arithmetic: the normal-pixel scores are sorted
  once (``np.sort``, no argsort) and the defect-pixel scores are located in
  them with ``np.searchsorted``. float32 maps are not up-cast. On
  600 x 256 x 256 float32 pixels this takes ~1 s and well under 1 GB, versus
  ~30 s and ~2 GB for scikit-learn.

  Args:
    masks: Binary ground-truth masks, typically (N, H, W); 1 = defect.
    maps: Anomaly maps of the same shape, higher = more anomalous.

  Returns:
    The pixel-level AUROC in [0, 1].

  Raises:
    ValueError: On invalid input (see module docstring).
  """
  masks_bool, maps_arr = _validate(
    masks, maps, metric="pixel AUROC", labels_name="masks", scores_name="maps"
  )
  flat_masks = masks_bool.reshape(-1)
  flat_maps = maps_arr.reshape(-1)
  normal_sorted = flat_maps[~flat_masks]  # boolean indexing copies
  normal_sorted.sort()
  defect_sorted = flat_maps[flat_masks]
  defect_sorted.sort()  # sorted queries make searchsorted cache-friendly
  # For each defect pixel: #normal pixels with a strictly lower score, and
  # with a lower-or-equal score. Their sum over defect pixels is 2 * U.
  n_lower = np.searchsorted(normal_sorted, defect_sorted, side="left")
  n_lower_eq = np.searchsorted(normal_sorted, defect_sorted, side="right")
  twice_u = int(n_lower.sum(dtype=np.int64)) + int(n_lower_eq.sum(dtype=np.int64))
  return twice_u / (2.0 * defect_sorted.size * normal_sorted.size)


def pro_curve(
  masks: npt.ArrayLike, maps: npt.ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
  """Per-region-overlap (PRO) curve of the MVTec AD benchmark.

  Ground-truth regions are the connected components of each image's mask,
  found with ``scipy.ndimage.label`` using **8-connectivity** (3x3 ones
  structure, as in the MVTec AD reference code); regions never span images.
  At a threshold ``t`` (pixels with ``map >= t`` are predicted anomalous),
  PRO is the mean over all regions of all images of the fraction of the
  region's pixels predicted anomalous (every region weighs the same,
  whatever its size or image), and FPR is the fraction of all normal
  (mask == 0) pixels of all images predicted anomalous. Every distinct map
  value is a threshold.

  The result is the exact curve of the reference implementation (which sorts
  all pixels and reads cumulative sums of the per-pixel PRO increment
  ``1 / (region size * number of regions)`` and FPR increment
  ``1 / number of normal pixels`` at distinct-score boundaries), but only the
  defect pixels are argsorted: between two consecutive distinct defect
  scores PRO is constant, so the vertices there lie on a horizontal segment
  and only its two ends are kept; their FPRs come from ``np.searchsorted``
  in the (``np.sort``-ed) normal-pixel scores. Ties between normal and
  defect pixels give diagonal segments, exactly as in the reference.

  Args:
    masks: Binary ground-truth masks of shape (N, H, W); 1 = defect.
    maps: Anomaly maps of shape (N, H, W), higher = more anomalous.

  Returns:
    ``(fprs, pros)``: float64 arrays, FPR non-decreasing, starting at
    (0, 0) and ending at (1, 1); the vertices of the piecewise-linear
    PRO-vs-FPR curve.

  Raises:
    ValueError: On invalid input (see module docstring), e.g. masks with
      no defect pixel, masks that are not (N, H, W), or constant maps.
  """
  masks_bool, maps_arr = _validate(
    masks, maps, metric="AUPRO", labels_name="masks", scores_name="maps", ndim=3
  )
  regions, n_regions = ndimage.label(masks_bool, structure=_REGION_STRUCTURE)
  flat_masks = masks_bool.reshape(-1)
  flat_maps = maps_arr.reshape(-1)

  normal_sorted = flat_maps[~flat_masks]  # boolean indexing copies
  normal_sorted.sort()
  n_normal = normal_sorted.size

  defect_regions = regions.reshape(-1)[flat_masks]
  del regions
  region_sizes = np.bincount(defect_regions, minlength=n_regions + 1)
  # PRO increment of one defect pixel: 1 / (region size * #regions).
  defect_increments = 1.0 / (region_sizes[defect_regions] * float(n_regions))
  defect_scores = flat_maps[flat_masks]
  order = np.argsort(defect_scores)[::-1]  # descending
  defect_scores = defect_scores[order]
  # Last index of each run of equal defect scores.
  ends = np.append(
    np.flatnonzero(defect_scores[1:] != defect_scores[:-1]), defect_scores.size - 1
  )
  thresholds = defect_scores[ends]  # distinct defect scores, descending
  pro_at = np.minimum(np.cumsum(defect_increments[order])[ends], 1.0)
  pro_before = np.concatenate(([0.0], pro_at[:-1]))
  # Normal pixels scoring > t (just above the threshold t) and >= t.
  fp_above = n_normal - np.searchsorted(normal_sorted, thresholds, side="right")
  fp_at = n_normal - np.searchsorted(normal_sorted, thresholds, side="left")

  fprs = np.empty(2 * thresholds.size + 2, dtype=np.float64)
  pros = np.empty_like(fprs)
  fprs[0], pros[0] = 0.0, 0.0
  fprs[1:-1:2], pros[1:-1:2] = fp_above / n_normal, pro_before
  fprs[2:-1:2], pros[2:-1:2] = fp_at / n_normal, pro_at
  fprs[-1], pros[-1] = 1.0, 1.0
  return fprs, pros


def _trapezoid_up_to(x: np.ndarray, y: np.ndarray, x_max: float) -> float:
  """Trapezoidal area under a piecewise-linear curve over ``[x[0], x_max]``.

  If ``x_max`` lies strictly inside a segment, ``y`` is linearly interpolated
  at ``x_max`` (as in the MVTec AD reference ``trapezoid``).

  Args:
    x: Non-decreasing x coordinates with ``x[0] <= x_max <= x[-1]``.
    y: y coordinates.
    x_max: Upper integration limit.

  Returns:
    The area.
  """
  n_in = int(np.searchsorted(x, x_max, side="right"))  # vertices with x <= x_max
  area = float(np.sum(0.5 * (y[1:n_in] + y[: n_in - 1]) * np.diff(x[:n_in])))
  if n_in < x.size and x[n_in - 1] < x_max:
    x0, x1, y0, y1 = x[n_in - 1], x[n_in], y[n_in - 1], y[n_in]
    y_at_max = y0 + (y1 - y0) * (x_max - x0) / (x1 - x0)
    area += float(0.5 * (y0 + y_at_max) * (x_max - x0))
  return area


def aupro(masks: npt.ArrayLike, maps: npt.ArrayLike, fpr_limit: float = 0.3) -> float:
  """Normalised area under the PRO curve up to an FPR limit (MVTec AD).

  Follows Bergmann et al., "The MVTec Anomaly Detection Dataset" (IJCV
  2021) and its reference code: the PRO curve (see ``pro_curve``; regions
  are **8-connected** components) is integrated with the trapezoidal rule
  over FPR in ``[0, fpr_limit]``, interpolating the curve at exactly
  ``fpr_limit``, and the area is divided by ``fpr_limit``, so a perfect map
  scores 1.0 and a random map about ``fpr_limit / 2``. All distinct map
  values are thresholds (exact; no threshold subsampling).

  Args:
    masks: Binary ground-truth masks of shape (N, H, W); 1 = defect.
    maps: Anomaly maps of shape (N, H, W), higher = more anomalous.
    fpr_limit: Upper FPR integration limit in (0, 1].

  Returns:
    The normalised AUPRO in [0, 1].

  Raises:
    ValueError: On invalid input (see module docstring), e.g. masks with
      no defect pixel, or ``fpr_limit`` outside (0, 1].
  """
  if (
    isinstance(fpr_limit, bool)
    or not isinstance(fpr_limit, _REAL)
    or not 0.0 < float(fpr_limit) <= 1.0
  ):
    raise ValueError(f"fpr_limit must be in (0, 1]; got {fpr_limit!r}")
  fprs, pros = pro_curve(masks, maps)
  return _trapezoid_up_to(fprs, pros, float(fpr_limit)) / float(fpr_limit)


# ---------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------


def summarize(
  labels: npt.ArrayLike,
  scores: npt.ArrayLike,
  *,
  masks: npt.ArrayLike | None = None,
  maps: npt.ArrayLike | None = None,
  threshold: float | None = None,
  aupro_fpr_limit: float = 0.3,
) -> dict[str, float]:
  """Computes the standard set of anomaly-detection metrics.

  Args:
    labels: Image-level binary labels of shape (N,), 1 = anomaly.
    scores: Image-level anomaly scores of shape (N,).
    masks: Optional pixel masks of shape (N, H, W); requires ``maps``.
    maps: Optional anomaly maps of shape (N, H, W); requires ``masks``.
    threshold: Optional decision threshold (``score > threshold`` is
      anomalous), e.g. from ``threshold_from_normals``.
    aupro_fpr_limit: FPR integration limit passed to ``aupro``.

  Returns:
    Dict with ``"auroc"``, ``"auprc"`` and ``"f1_max"``; if ``threshold``
    is given also ``"precision@thr"``, ``"recall@thr"``, ``"f1@thr"`` and
    ``"fpr@thr"``; if ``masks``/``maps`` are given also ``"pixel_auroc"``
    and ``"aupro"`` -- unless the masks contain no defect pixel (or no
    normal pixel), in which case these two keys are absent (not faked).

  Raises:
    ValueError: On invalid input; if only one of ``masks``/``maps`` is
      given; if ``masks`` and ``maps`` differ in shape or hold a different
      number of images than ``labels``; or if an image labelled normal
      has defect pixels in its mask.
  """
  result = {
    "auroc": auroc(labels, scores),
    "auprc": auprc(labels, scores),
    "f1_max": f1_max(labels, scores),
  }
  if threshold is not None:
    for key, value in threshold_metrics(labels, scores, threshold).items():
      result[f"{key}@thr"] = value

  if (masks is None) != (maps is None):
    raise ValueError(
      "masks and maps must be given together; got "
      f"masks={'None' if masks is None else 'an array'} and "
      f"maps={'None' if maps is None else 'an array'}"
    )
  if masks is None:
    return result

  masks_arr = np.asarray(masks)
  labels_arr = np.asarray(labels)
  maps_shape = np.shape(maps)
  if masks_arr.shape != maps_shape:
    raise ValueError(
      "masks and maps must have the same shape; got "
      f"masks.shape={masks_arr.shape} and maps.shape={maps_shape}"
    )
  if masks_arr.ndim == 0 or masks_arr.shape[0] != labels_arr.shape[0]:
    raise ValueError(
      "masks must hold one mask per image; got "
      f"masks.shape={masks_arr.shape} and labels.shape={labels_arr.shape}"
    )
  if np.any(masks_arr[labels_arr == 0] != 0):
    raise ValueError(
      "masks contain defect pixels in images labelled normal (0); "
      "labels and masks are inconsistent"
    )
  n_defect = int(np.count_nonzero(masks_arr))
  if 0 < n_defect < masks_arr.size:
    result["pixel_auroc"] = pixel_auroc(masks_arr, maps)
    result["aupro"] = aupro(masks_arr, maps, fpr_limit=aupro_fpr_limit)
  return result
