"""The standard set of metrics of one score: image-level, at a threshold, pixel-level."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ganad_jax.metrics import _image_level as image_level
from ganad_jax.metrics import _pixel_level as pixel_level


def standard_metrics(
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
    "auroc": image_level.auroc(labels, scores),
    "auprc": image_level.auprc(labels, scores),
    "f1_max": image_level.f1_max(labels, scores),
  }
  if threshold is not None:
    for key, value in image_level.threshold_metrics(labels, scores, threshold).items():
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
    result["pixel_auroc"] = pixel_level.pixel_auroc(masks_arr, maps)
    result["aupro"] = pixel_level.aupro(masks_arr, maps, fpr_limit=aupro_fpr_limit)
  return result
