"""AnoGAN's patch protocol: random crops to train on, tiles to score, maps stitched back.

Schlegl et al., "Unsupervised Anomaly Detection with Generative Adversarial
Networks to Guide Marker Discovery", IPMI 2017, Sec. 3: the GAN is trained
on random 64x64 patches of OCT scans kept at their resolution, and a scan is
scored by its patches. Here (config section `patch`, `configs.patch`):

  training: every step crops one random c x c window from each image of its
    batch (`random_crops`), drawn from the step's own key, so a resumed run
    replays the same crops;
  scoring: every image is cut into overlapping c x c tiles (`tile`, starts
    `tile_starts`), all tiles of a split are scored by the method in batches,
    and each output that is a per-tile image ("map", "recon") is stitched
    back, averaging where tiles overlap (`stitch`); a score without a map is
    spread over its tile as a constant. The image score is the maximum of the
    Gaussian-blurred stitched map ("max_map") or the mean of the image's tile
    scores ("mean_patches") (`image_outputs`).

Tiles are ordered image-major, then row-major over the tile grid:
tile t of image n is row n * T + t of the tiled array.
"""

from typing import NamedTuple

import jax
import ml_collections
import numpy as np
from scipy import ndimage


class Protocol(NamedTuple):
  """The `patch` section a run follows (`from_config`).

  Attributes:
    size: the side c of the crops and tiles.
    stride: the step between tiles.
    image_score: "max_map" or "mean_patches" (`configs.patch.IMAGE_SCORES`).
    sigma: the blur of "max_map", in pixels.
  """
  size: int
  stride: int
  image_score: str
  sigma: float


def from_config(config: ml_collections.ConfigDict) -> Protocol | None:
  """The run's `Protocol`, or None when `config.patch.size` is 0 (whole images)."""
  if config.patch.size == 0:
    return None
  return Protocol(int(config.patch.size), int(config.patch.stride), config.patch.image_score,
                  float(config.patch.sigma))


def tile_starts(length: int, size: int, stride: int) -> np.ndarray:
  """Start offsets of the tiles along one axis: every `stride`, the last flush with the end.

  Args:
    length: the image's extent along the axis.
    size: the tile's extent (<= length).
    stride: the step, 1 <= stride <= size (no gaps).

  Returns:
    int array (K,), increasing, first 0 and last `length - size`: the tiles
    [s, s + size) cover [0, length).

  Raises:
    ValueError: size > length, or size or stride < 1, or stride > size.
  """
  if size < 1 or not 1 <= stride <= size or size > length:
    raise ValueError(f"Tiles of {size} with stride {stride} cannot cover a length of {length}.")
  starts = list(range(0, length - size + 1, stride))
  if starts[-1] != length - size:
    starts.append(length - size)
  return np.asarray(starts, np.int64)


def grid(image_shape: tuple[int, int], protocol: Protocol) -> tuple[np.ndarray, np.ndarray]:
  """(row starts (T,), column starts (T,)) of an image's T tiles, row-major."""
  rows = tile_starts(image_shape[0], protocol.size, protocol.stride)
  cols = tile_starts(image_shape[1], protocol.size, protocol.stride)
  r, c = np.meshgrid(rows, cols, indexing="ij")
  return r.ravel(), c.ravel()


def tile(images: np.ndarray, protocol: Protocol) -> np.ndarray:
  """Every image's overlapping tiles.

  Args:
    images: (N, H, W, C) array.
    protocol: the tile size and stride.

  Returns:
    (N * T, c, c, C) array of images' dtype, image-major (`grid` order).
  """
  rows, cols = grid(images.shape[1:3], protocol)
  c = protocol.size
  tiles = np.stack([images[:, r:r + c, s:s + c] for r, s in zip(rows, cols)], axis=1)
  return tiles.reshape(-1, c, c, *images.shape[3:])


def stitch(tiles: np.ndarray, image_shape: tuple[int, int], protocol: Protocol) -> np.ndarray:
  """Per-tile arrays back on the image grid, the mean where tiles overlap.

  Args:
    tiles: (N * T, c, c, ...) values of `tile`'s tiles, or (N * T,) one
      value per tile (spread over it as a constant).
    image_shape: (H, W) of the images.
    protocol: the tile size and stride `tile` used.

  Returns:
    float64 array (N, H, W, ...).

  Raises:
    ValueError: a leading axis that is no multiple of T, or tiles not c x c.
  """
  rows, cols = grid(image_shape, protocol)
  c, num_tiles = protocol.size, len(rows)
  tiles = np.asarray(tiles, np.float64)
  if tiles.ndim == 1:
    tiles = np.broadcast_to(tiles[:, None, None], (len(tiles), c, c))
  if len(tiles) % num_tiles or tiles.shape[1:3] != (c, c):
    raise ValueError(f"Cannot stitch tiles of shape {tiles.shape}: expected (N * {num_tiles}, "
                     f"{c}, {c}, ...) for {image_shape[0]}x{image_shape[1]} images.")
  tiles = tiles.reshape(-1, num_tiles, *tiles.shape[1:])
  total = np.zeros((len(tiles), *image_shape, *tiles.shape[4:]))
  count = np.zeros(image_shape)
  for t, (r, s) in enumerate(zip(rows, cols)):
    total[:, r:r + c, s:s + c] += tiles[:, t]
    count[r:r + c, s:s + c] += 1
  return total / count.reshape(*image_shape, *([1] * (total.ndim - 3)))


def random_crops(key: jax.Array, images: jax.Array, size: int) -> jax.Array:
  """One uniformly placed size x size window of each image.

  Args:
    key: the draw's key (the same key gives the same windows).
    images: (B, H, W, C).
    size: the window's side (<= H, W).

  Returns:
    (B, size, size, C) crops, images' dtype.
  """
  b, h, w, ch = images.shape
  k_row, k_col = jax.random.split(key)
  rows = jax.random.randint(k_row, (b,), 0, h - size + 1)
  cols = jax.random.randint(k_col, (b,), 0, w - size + 1)
  crop = lambda image, r, s: jax.lax.dynamic_slice(image, (r, s, 0), (size, size, ch))
  return jax.vmap(crop)(images, rows, cols)


def corner_crops(images, size: int):
  """The top-left size x size window of each image (B, H, W, C) -> (B, size, size, C).

  What a method's `init` sees: only the shapes matter there. A
  `jax.ShapeDtypeStruct` of images gives that of the crops.
  """
  if isinstance(images, jax.ShapeDtypeStruct):
    b, _, _, *rest = images.shape
    return jax.ShapeDtypeStruct((b, size, size, *rest), images.dtype)
  return images[:, :size, :size]


def _max_map(maps: np.ndarray, sigma: float) -> np.ndarray:
  """(N,) maxima of (N, H, W) maps, each blurred as scipy's gaussian_filter does (mirrored)."""
  if sigma > 0:
    maps = ndimage.gaussian_filter(maps, sigma=(0, sigma, sigma))
  return maps.max(axis=(1, 2))


def image_outputs(tile_outputs: dict[str, np.ndarray], image_shape: tuple[int, int],
                  protocol: Protocol) -> dict[str, np.ndarray]:
  """A method's outputs over the tiles of N images -> its outputs over the images.

  "score" and every "score_<name>" (N * T,) become (N,) by
  `protocol.image_score`: "max_map" takes the maximum of the stitched map,
  blurred by `protocol.sigma` (the method's "map" for "score", the tile
  scores spread over their tiles for a score without a map); "mean_patches"
  the mean of the image's T tile scores. "score" by the other rule is added
  as "score_mean_patches" or "score_max_map". "map" (N, H, W) is the stitched
  map of "score" (the method's map, else its tile scores spread over the
  tiles), and every other (N * T, c, c, ...) output (e.g. "recon") is
  stitched to (N, H, W, ...), float32 all.

  Args:
    tile_outputs: the method's `score` outputs over `tile`'s (N * T, c, c, C)
      tiles, each with N * T leading.
    image_shape: (H, W) of the images.
    protocol: the run's protocol.

  Returns:
    The outputs per image.

  Raises:
    ValueError: an output that is neither a score nor a per-tile image.
  """
  num_tiles = len(grid(image_shape, protocol)[0])
  c = protocol.size
  scores = [k for k in tile_outputs if k == "score" or k.startswith("score_")]
  out = {}
  for name, values in tile_outputs.items():
    if name in scores:
      continue
    if name != "map" and values.shape[1:3] != (c, c):
      raise ValueError(f"The method's output {name!r} of shape {values.shape} is neither a "
                       f"score nor a {c}x{c} tile: the patch protocol cannot stitch it.")
    out[name] = stitch(values, image_shape, protocol).astype(np.float32)
  main_map = out.get("map")
  if main_map is None:
    main_map = out["map"] = stitch(tile_outputs["score"], image_shape, protocol).astype(np.float32)

  def by_rule(name, rule):
    values = np.asarray(tile_outputs[name], np.float64)
    if rule == "mean_patches":
      return values.reshape(-1, num_tiles).mean(axis=1)
    score_map = main_map if name == "score" else stitch(values, image_shape, protocol)
    return _max_map(np.asarray(score_map, np.float64), protocol.sigma)

  for name in scores:
    out[name] = by_rule(name, protocol.image_score).astype(np.float32)
  other = "max_map" if protocol.image_score == "mean_patches" else "mean_patches"
  out[f"score_{other}"] = by_rule("score", other).astype(np.float32)
  return out
