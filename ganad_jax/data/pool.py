"""`Pool`: what an image or tabular source returns before any split."""

import dataclasses
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class Pool:
  """All examples of a source, pooled over its files or splits.

  Attributes:
    x: float32 images (N, H, W, C) in [-1, 1]; None for tabular sources,
      whose features are only encoded after the split.
    labels: int64 class ids (N,) in 0..len(class_names) - 1.
    class_names: the name of each class id ('0'..'9', 'cat', a label value).
    name: the source as error messages name it, e.g. 'digits'.
    notes: human-readable notes for info['notes'].
    info: JSON-serialisable source-specific entries for Splits.info.
  """
  x: np.ndarray | None
  labels: np.ndarray
  class_names: tuple[str, ...]
  name: str
  notes: tuple[str, ...] = ()
  info: dict[str, Any] = dataclasses.field(default_factory=dict)
