"""Evaluation metrics for anomaly detection.

Conventions used throughout this package:

* Labels / masks are binary with ``1`` = anomalous (defect) and ``0`` = normal.
  Boolean arrays and integer or float arrays holding only 0 and 1 are accepted.
* Scores / anomaly maps are real numbers; a *higher* value means *more
  anomalous*.
* Invalid input (mismatched shapes, NaN/Inf scores, constant scores,
  non-binary labels, a single class present) raises ``ValueError`` with a
  message naming the offending argument; metrics are never silently faked.

Image-level metrics (``auroc``, ``auprc``, ``f1_max``,
``threshold_from_normals``, ``threshold_metrics``) live in ``_image_level``,
pixel-level ones (``pixel_auroc``, ``pro_curve``, ``aupro``) in
``_pixel_level``, and ``standard_metrics`` (every metric of one score) in
``_standard``. Use them through this package: ``metrics.auroc(...)``.
"""

# The package namespace is the one public name of each metric; the private
# modules only split the code by concern.
from ganad_jax.metrics._image_level import auprc
from ganad_jax.metrics._image_level import auroc
from ganad_jax.metrics._image_level import f1_max
from ganad_jax.metrics._image_level import threshold_from_normals
from ganad_jax.metrics._image_level import threshold_metrics
from ganad_jax.metrics._pixel_level import aupro
from ganad_jax.metrics._pixel_level import pixel_auroc
from ganad_jax.metrics._pixel_level import pro_curve
from ganad_jax.metrics._standard import standard_metrics

__all__ = [
    "auprc",
    "auroc",
    "aupro",
    "f1_max",
    "pixel_auroc",
    "pro_curve",
    "standard_metrics",
    "threshold_from_normals",
    "threshold_metrics",
]
