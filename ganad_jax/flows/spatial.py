"""Spatial helpers of the flow methods: positional encodings, resizing, pooling.

`positional_encoding_2d` is CFlow-AD's `positionalencoding2d` (also MSFlow's),
channels-last. `resize_align_corners` is PyTorch's
`F.interpolate(mode="bilinear", align_corners=True)` (CFlow-AD's and MSFlow's
map upsampling, MSFlow's fusion); `adaptive_avg_pool` is
`F.adaptive_avg_pool2d`; `avg_pool_3x3` is `nn.AvgPool2d(3, 2, 1)` (padding
counted, divisor 9), MSFlow's pooling of the stage features. The resampling
ones are exact matrix products (separable in H and W), so they run on any
size without a gather.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np


def positional_encoding_2d(d: int, h: int, w: int) -> np.ndarray:
  """(h, w, d) float32: sin / cos of the column in channels [0, d/2), of the row in [d/2, d).

  Raises:
    ValueError: d not a multiple of 4.
  """
  if d % 4:
    raise ValueError(f"a 2-D sinusoidal positional encoding needs a multiple of 4 channels; "
                     f"got {d}.")
  half = d // 2
  div = np.exp(np.arange(0.0, half, 2) * -(math.log(1e4) / half))
  pe = np.zeros((d, h, w))
  pos_w, pos_h = np.arange(w)[:, None] * div, np.arange(h)[:, None] * div  # (w, d/4), (h, d/4)
  pe[0:half:2] = np.sin(pos_w).T[:, None, :]
  pe[1:half:2] = np.cos(pos_w).T[:, None, :]
  pe[half::2] = np.sin(pos_h).T[:, :, None]
  pe[half + 1::2] = np.cos(pos_h).T[:, :, None]
  return pe.transpose(1, 2, 0).astype(np.float32)


def _align_corners_matrix(n: int, m: int) -> np.ndarray:
  """(m, n) linear interpolation weights from n to m samples with corners aligned."""
  out = np.zeros((m, n), np.float32)
  if n == 1 or m == 1:
    out[:, 0] = 1.0
    return out
  pos = np.arange(m) * (n - 1) / (m - 1)
  lo = np.minimum(np.floor(pos).astype(int), n - 2)
  frac = pos - lo
  out[np.arange(m), lo] = 1.0 - frac
  out[np.arange(m), lo + 1] += frac
  return out


def _adaptive_matrix(n: int, m: int) -> np.ndarray:
  """(m, n) averaging weights of adaptive average pooling from n to m bins."""
  out = np.zeros((m, n), np.float32)
  for i in range(m):
    start, end = (i * n) // m, -((-(i + 1) * n) // m)
    out[i, start:end] = 1.0 / (end - start)
  return out


def _separable(x, rows: np.ndarray, cols: np.ndarray):
  """x (N, H, W, ...) -> (N, rows.shape[0], cols.shape[0], ...) by the two matrices."""
  hi = jax.lax.Precision.HIGHEST
  x = jnp.einsum("oh,nh...->no...", rows, x, precision=hi)
  return jnp.einsum("pw,now...->nop...", cols, x, precision=hi)


def resize_align_corners(x, size: tuple[int, int]):
  """Bilinear resize with align_corners=True: x (N, H, W) or (N, H, W, C) -> (N, *size[, C])."""
  return _separable(x, _align_corners_matrix(x.shape[1], size[0]),
                    _align_corners_matrix(x.shape[2], size[1]))


def adaptive_avg_pool(x, size: tuple[int, int]):
  """Adaptive average pooling: x (N, H, W, C) -> (N, *size, C)."""
  return _separable(x, _adaptive_matrix(x.shape[1], size[0]),
                    _adaptive_matrix(x.shape[2], size[1]))


def avg_pool_3x3(x):
  """nn.AvgPool2d(3, 2, padding 1), zeros counted: (N, H, W, C) -> (N, ceil(H/2), ceil(W/2), C)."""
  total = jax.lax.reduce_window(x, 0.0, jax.lax.add, (1, 3, 3, 1), (1, 2, 2, 1),
                                ((0, 0), (1, 1), (1, 1), (0, 0)))
  return total / 9.0
