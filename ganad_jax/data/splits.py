"""The containers `load` returns: one `Split` per role, gathered in `Splits`."""

import dataclasses
import hashlib
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class Split:
  """One role's data (train, val or test), aligned along the first axis.

  Attributes:
    x: float32; images (N, H, W, C) in [-1, 1] or tabular rows (N, F).
    y: int32 (N,), 1 = anomaly, 0 = normal.
    kinds: str (N,), the original class name or defect type of each example
      ('good', '3', 'crack', ...), for per-type tables.
    masks: float32 (N, H, W) in {0, 1} (all zero for normal images), or None
      when the source has no masks.
  """
  x: np.ndarray
  y: np.ndarray
  kinds: np.ndarray
  masks: np.ndarray | None = None

  def __post_init__(self):
    n = len(self.x)
    if len(self.y) != n or len(self.kinds) != n:
      raise ValueError(
          f'Split arrays disagree in length: x {len(self.x)}, y {len(self.y)}, '
          f'kinds {len(self.kinds)}.')
    if self.masks is not None and self.masks.shape != self.x.shape[:3]:
      raise ValueError(
          f'masks shape {self.masks.shape} does not match images '
          f'{self.x.shape}.')

  def __len__(self) -> int:
    return len(self.x)


@dataclasses.dataclass(frozen=True)
class Splits:
  """Everything a run needs from the data.

  Attributes:
    train: normal examples only.
    val: normal examples only, held out from train (for thresholds and early
      stopping; never use test labels for those).
    test: normal and anomalous examples.
    info: JSON-serialisable description: source, protocol, class, sizes,
      'notes' (list of str) and source-specific entries.
  """
  train: Split
  val: Split
  test: Split
  info: dict[str, Any]


def digest(*arrays: np.ndarray) -> str:
  """SHA-256 (hex) of `arrays`: each one's shape, dtype and bytes, in order.

  The fingerprint of a data set: a checkpoint records that of the data it was
  trained on (`runner.checkpoint_meta`), a `Detector` that of what it was fit on.
  """
  h = hashlib.sha256()
  for x in arrays:
    x = np.asarray(x)
    h.update(f'{x.shape}{x.dtype}'.encode())
    h.update(np.ascontiguousarray(x).tobytes())
  return h.hexdigest()
