"""Input checks shared by the image-level and pixel-level metrics.

Every metric refuses invalid input with a ``ValueError`` naming the offending
argument (see ``ganad_jax.metrics``); these helpers hold those checks once.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

# Types accepted for a real-valued parameter (quantile, threshold, fpr_limit).
REAL = (int, float, np.integer, np.floating)


def as_float_array(values: npt.ArrayLike, name: str) -> np.ndarray:
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


def check_finite(values: np.ndarray, name: str) -> None:
  """Raises ``ValueError`` (with counts) if ``values`` has NaN or Inf entries."""
  if not np.isfinite(values).all():
    n_nan = int(np.count_nonzero(np.isnan(values)))
    n_inf = int(np.count_nonzero(np.isinf(values)))
    raise ValueError(
      f"{name} contains {n_nan} NaN and {n_inf} Inf value(s) out of "
      f"{values.size}; all {name} must be finite"
    )


def validate(
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
  scores_arr = as_float_array(scores, scores_name)

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

  check_finite(scores_arr, scores_name)

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

