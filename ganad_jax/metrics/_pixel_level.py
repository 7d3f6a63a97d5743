"""Pixel-level metrics: anomaly maps against ground-truth defect masks.

``pixel_auroc`` and the MVTec AD ``pro_curve`` / ``aupro`` are exact
sort-based numpy implementations (ties handled like scikit-learn and the
MVTec AD reference code) that stay fast and memory-friendly on tens of
millions of pixels (e.g. 600 x 256 x 256 float32 maps).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from ganad_jax.metrics import _checks as checks

# Connectivity used for ground-truth regions in ``pro_curve`` / ``aupro``:
# 8-connectivity within each image (the MVTec AD reference code calls
# ``scipy.ndimage.label(gt_map, np.ones((3, 3)))`` per image). Applied to the
# whole (N, H, W) stack at once; the outer slices of the 3x3x3 structure are
# zero, so regions never connect across images.
_REGION_STRUCTURE = np.zeros((3, 3, 3), dtype=bool)
_REGION_STRUCTURE[1] = True


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
    ValueError: On invalid input (see ``ganad_jax.metrics``).
  """
  masks_bool, maps_arr = checks.validate(
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
    ValueError: On invalid input (see ``ganad_jax.metrics``), e.g. masks with
      no defect pixel, masks that are not (N, H, W), or constant maps.
  """
  masks_bool, maps_arr = checks.validate(
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
    ValueError: On invalid input (see ``ganad_jax.metrics``), e.g. masks with
      no defect pixel, or ``fpr_limit`` outside (0, 1].
  """
  if (
    isinstance(fpr_limit, bool)
    or not isinstance(fpr_limit, checks.REAL)
    or not 0.0 < float(fpr_limit) <= 1.0
  ):
    raise ValueError(f"fpr_limit must be in (0, 1]; got {fpr_limit!r}")
  fprs, pros = pro_curve(masks, maps)
  return _trapezoid_up_to(fprs, pros, float(fpr_limit)) / float(fpr_limit)
