"""What a `Detector` accepts as X, and how X becomes the networks' float32 inputs.

`check_array` refuses what no detector takes (rank, dtype, NaN / Inf, empty);
`fit_spec` records at `fit` what the inputs are (tabular rows or images, their
value range, the side the nets see); `prepare` turns any later X into network
inputs with that spec, refusing what does not fit it; `resize_maps` brings
anomaly maps back to each input's resolution. Images follow the data loaders
(`ganad_jax.data.images`); tabular rows the fitted MinMax scaler
(`ganad_jax.data.tabular.numeric_scaler`).
"""

import numpy as np

from ganad_jax.data import images as images_lib

INPUT_RANGES = ("auto", "0_255", "0_1", "-1_1")
_RANGE_TOLERANCE = 1e-3  # Relative to the range's width: float rounding, not data errors.
_BOUNDS = {"0_255": (0.0, 255.0), "0_1": (0.0, 1.0), "-1_1": (-1.0, 1.0)}


def check_array(X, what: str) -> np.ndarray:
  """X as a numeric array of rank 2, 3 or 4 (bools as float32), non-empty and finite.

  Raises:
    ValueError: naming `what`, its dtype, rank, shape or count of NaN / Inf.
  """
  x = np.asarray(X)
  if x.dtype == object or x.dtype.kind not in "biuf":
    raise ValueError(f"{what} must be a numeric array; got dtype {x.dtype}.")
  if x.dtype.kind == "b":
    x = x.astype(np.float32)
  if x.ndim not in (2, 3, 4):
    raise ValueError(f"{what} must be tabular rows (N, F), grayscale images (N, H, W) or images "
                     f"(N, H, W, C); got an array of rank {x.ndim}, shape {x.shape}.")
  if len(x) == 0:
    raise ValueError(f"{what} is empty (shape {x.shape}).")
  if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
    bad = int(np.sum(~np.isfinite(x)))
    raise ValueError(f"{what} holds {bad} NaN/Inf values; impute or drop them first.")
  return x


def _check_channels(x: np.ndarray, what: str) -> None:
  if x.ndim == 4 and x.shape[-1] not in (1, 3):
    hint = " (channels first? pass (N, H, W, C))" if x.shape[1] in (1, 3) else ""
    raise ValueError(f"Images (N, H, W, C) need C = 1 or 3; {what} has shape {x.shape}{hint}.")


def _range_of(x: np.ndarray, requested: str) -> str:
  """The value range of images: "0_255", "0_1" or "-1_1" (see `Detector`)."""
  if requested != "auto":
    return requested
  if x.dtype.kind in "biu":
    return "0_255"
  lo, hi = float(x.min()), float(x.max())
  if lo < 0.0:
    return "-1_1"
  if hi <= 1.0 + _RANGE_TOLERANCE:
    return "0_1"
  raise ValueError(f"Float images must lie in [0, 1] or [-1, 1]; X holds values up to {hi:g}. "
                   "Pass uint8 images for 0..255, or input_range='0_255'.")


def _to_unit(x: np.ndarray, value_range: str, what: str) -> np.ndarray:
  """Images in `value_range` -> float32 in [-1, 1], checking the values."""
  lo, hi = _BOUNDS[value_range]
  slack = _RANGE_TOLERANCE * (hi - lo)
  x_lo, x_hi = float(x.min()), float(x.max())
  if x_lo < lo - slack or x_hi > hi + slack:
    raise ValueError(f"{what} holds values in [{x_lo:g}, {x_hi:g}], outside the range "
                     f"[{lo:g}, {hi:g}] of the images the detector was fitted on "
                     f"(input_range={value_range!r}).")
  scaled = (x.astype(np.float32) - np.float32(lo)) * np.float32(2.0 / (hi - lo)) - np.float32(1)
  return np.clip(scaled, -1.0, 1.0)


def _luma(x: np.ndarray) -> np.ndarray:
  """RGB -> grayscale with PIL's weights (as `images.to_channels`), for float images."""
  return (x[..., :1] * 0.299 + x[..., 1:2] * 0.587 + x[..., 2:3] * 0.114).astype(np.float32)


def resize_maps(maps: np.ndarray, height: int, width: int) -> np.ndarray:
  """Bilinear resize of (N, h, w) maps to (N, height, width) (PIL mode 'F')."""
  if maps.shape[1:] == (height, width):
    return maps
  from PIL import Image  # pylint: disable=g-import-not-at-top
  return np.stack([np.asarray(Image.fromarray(m.astype(np.float32)).resize(
      (width, height), Image.Resampling.BILINEAR)) for m in maps])


def _is_power_of_two_side(height: int, width: int) -> bool:
  return height == width and height >= 16 and height & (height - 1) == 0


def fit_spec(x: np.ndarray, input_range: str, image_size: int, size_given: bool) -> dict:
  """What `fit` learns about checked inputs x (everything but the tabular scaler).

  Args:
    x: `check_array`'s result.
    input_range: one of INPUT_RANGES.
    image_size: the config's `data.image_size`.
    size_given: the user set `data.image_size`; else images whose side is
      square and a power of two >= 16 keep it.

  Returns:
    {"kind": "tabular", "input_shape": [F]} or {"kind": "image",
    "input_range", "input_shape": [size, size, channels]}.
  """
  if x.ndim == 2:
    return {"kind": "tabular", "input_shape": [int(x.shape[1])]}
  _check_channels(x, "X")
  height, width = x.shape[1:3]
  channels = 1 if x.ndim == 3 else int(x.shape[-1])
  size = int(image_size) if size_given or not _is_power_of_two_side(height, width) else int(height)
  return {"kind": "image", "input_range": _range_of(x, input_range),
          "input_shape": [size, size, channels]}


def prepare(X, spec: dict, scaler, what: str = "X") -> np.ndarray:
  """X -> float32 network inputs (N, F) or (N, size, size, C) in [-1, 1], with the fitted spec.

  Args:
    X: rows or images as `Detector` takes them.
    spec: `fit_spec`'s record.
    scaler: the fitted tabular scaler (None for images).
    what: X's name in error messages.

  Raises:
    ValueError: X does not fit the spec (kind, features, channels, range).
  """
  x = check_array(X, what)
  if spec["kind"] == "tabular":
    if x.ndim != 2 or x.shape[1] != spec["input_shape"][0]:
      raise ValueError(f"{what} must be rows (N, {spec['input_shape'][0]}) like the data the "
                       f"detector was fitted on; got shape {x.shape}.")
    return scaler.transform(x.astype(np.float64)).astype(np.float32)
  if x.ndim == 2:
    raise ValueError(f"{what} must be images (N, H, W[, C]); the detector was fitted on images "
                     f"and got rows of shape {x.shape}.")
  _check_channels(x, what)
  if x.ndim == 3:
    x = x[..., None]
  size, _, channels = spec["input_shape"]
  if spec["input_range"] == "0_255" and x.dtype == np.uint8:
    return images_lib.prepare_uint8(x, size, channels)  # Exactly as the image loaders.
  unit = _to_unit(x, spec["input_range"], what)
  if unit.shape[-1] == 3 and channels == 1:
    unit = _luma(unit)
  if unit.shape[1:3] != (size, size):
    unit = np.stack([images_lib.resize_float(unit[..., c], size)
                     for c in range(unit.shape[-1])], axis=-1)
    unit = np.clip(unit, -1.0, 1.0)
  if unit.shape[-1] == 1 and channels == 3:
    unit = np.repeat(unit, 3, axis=-1)
  return unit
