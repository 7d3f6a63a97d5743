"""An MVTec-AD-style category folder: train/good, test/<type>, ground_truth.

Layout (MVTec AD, and the Magnetic-Tile copy in ../shared/data):

  <path>/train/good/*                       defect-free training images
  <path>/test/good/*                        defect-free test images
  <path>/test/<type>/*                      defective test images, one folder
                                            per defect type
  <path>/ground_truth/<type>/<stem>_mask.png  a mask per defective image

Any format PIL reads, any size. Images become `channels`-channel uint8, are
resized (PIL bilinear) to image_size and scaled to [-1, 1]. JPEGs are decoded
with PIL's `draft` mode, which lets libjpeg shrink by 1/2, 1/4 or 1/8 while
decoding, never below image_size, before the bilinear resize: several times
faster on large photos, with the same result up to resampling noise. Masks
are resized with NEAREST and binarised (> 127, or > 0 for masks stored as
0/1). Without a `ground_truth` folder there are no masks (Split.masks is
None); with one, every defective image must have its mask. File names are
sorted, so loading is deterministic.
"""

from collections.abc import Callable, Iterable
from concurrent import futures
import dataclasses
import os
from typing import Any

from absl import logging
import ml_collections
import numpy as np
from PIL import Image

from ganad_jax.data import images
from ganad_jax.data import protocols

NORMAL = 'good'


def _image_extensions() -> frozenset[str]:
  Image.init()
  return frozenset(ext.lower() for ext, fmt in Image.registered_extensions()
                   .items() if fmt in Image.OPEN)


@dataclasses.dataclass(frozen=True)
class Category:
  """A decoded category folder (uint8, not yet scaled), before the holdout.

  Attributes:
    train_x: uint8 (N, S, S, C), train/good.
    train_files: paths relative to the folder, aligned with train_x.
    test_x: uint8 (M, S, S, C), test/*, sorted by type and name.
    test_y: int32 (M,), 0 for test/good, 1 otherwise.
    test_kinds: str (M,), the test sub-folder name.
    test_files: paths relative to the folder, aligned with test_x.
    test_masks: bool (M, S, S), or None without ground_truth.
    notes: notes for info['notes'].
  """
  train_x: np.ndarray
  train_files: list[str]
  test_x: np.ndarray
  test_y: np.ndarray
  test_kinds: np.ndarray
  test_files: list[str]
  test_masks: np.ndarray | None
  notes: list[str]


def list_images(folder: str) -> list[str]:
  """Returns the sorted paths of the image files (by extension) in a folder."""
  extensions = _image_extensions()
  return [
      os.path.join(folder, name) for name in sorted(os.listdir(folder))
      if not name.startswith('.') and
      os.path.splitext(name)[1].lower() in extensions and
      os.path.isfile(os.path.join(folder, name))
  ]


def read_image(path: str, size: int,
               channels: int) -> tuple[np.ndarray, tuple[int, int]]:
  """Decodes one image to uint8 (size, size, channels).

  Args:
    path: the image file.
    size: output side.
    channels: 1 or 3.

  Returns:
    (the image, its original (width, height)).

  Raises:
    ValueError: naming the file when PIL cannot decode it.
  """
  try:
    with Image.open(path) as image:
      original = image.size
      if image.format == 'JPEG':
        image.draft('L' if channels == 1 else 'RGB', (size, size))
      array = images.pil_to_uint8(image, channels)
  except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
    raise ValueError(f'Cannot decode image {path}: {e}') from e
  return images.resize_uint8([array], size)[0], original


def read_mask(path: str, image_path: str, image_size: tuple[int, int],
              size: int) -> np.ndarray:
  """Decodes one mask to bool (size, size).

  Args:
    path: the mask file.
    image_path: its image, for error messages.
    image_size: the image's original (width, height); the mask must match.
    size: output side.

  Returns:
    The binary mask.

  Raises:
    ValueError: naming the files when the mask cannot be decoded or its size
      differs from its image's.
  """
  try:
    with Image.open(path) as mask:
      if mask.size != image_size:
        raise ValueError(
            f'Mask {path} is {mask.size[0]}x{mask.size[1]} (WxH) but its image '
            f'{image_path} is {image_size[0]}x{image_size[1]}.')
      array = images.pil_to_uint8(mask, 1)[..., 0]
  except (OSError, SyntaxError, Image.DecompressionBombError) as e:
    raise ValueError(f'Cannot decode mask {path}: {e}') from e
  threshold = 127 if array.max() > 1 else 0
  resized = Image.fromarray(array).resize((size, size),
                                           Image.Resampling.NEAREST)
  return np.asarray(resized) > threshold


def _mask_path(ground_truth: str, kind: str, image_path: str) -> str:
  """Returns the mask file of a defective image; raises if there is none."""
  stem = os.path.splitext(os.path.basename(image_path))[0]
  expected = os.path.join(ground_truth, kind, f'{stem}_mask.png')
  if os.path.isfile(expected):
    return expected
  folder = os.path.join(ground_truth, kind)
  if os.path.isdir(folder):
    for name in sorted(os.listdir(folder)):
      if os.path.splitext(name)[0] == f'{stem}_mask':
        return os.path.join(folder, name)
  raise FileNotFoundError(
      f'No mask for defective image {image_path}: expected {expected}.')


def _cap(paths: list[str], max_per_class: int,
         generator: np.random.Generator) -> list[str]:
  if 0 < max_per_class < len(paths):
    keep = np.sort(generator.choice(len(paths), max_per_class, replace=False))
    return [paths[i] for i in keep]
  return paths


def _threaded(function: Callable[..., Any], *iterables: Iterable[Any]
              ) -> list[Any]:
  """Maps in a few threads (PIL releases the GIL while decoding)."""
  with futures.ThreadPoolExecutor(min(4, os.cpu_count() or 1)) as executor:
    return list(executor.map(function, *iterables))


def _decode_all(paths: list[str], size: int, channels: int
                ) -> tuple[np.ndarray, list[tuple[int, int]]]:
  """Decodes images to uint8 (N, size, size, channels) and original sizes."""
  results = _threaded(lambda p: read_image(p, size, channels), paths)
  if not results:
    return np.zeros((0, size, size, channels), np.uint8), []
  return (np.stack([r[0] for r in results]), [r[1] for r in results])


def load(config: ml_collections.ConfigDict, seed: int) -> Category:
  """Reads a category folder.

  Args:
    config: the `data` sub-config (path, image_size, channels,
      max_per_class: a per-folder cap applied, seeded, before decoding).
    seed: the split seed (used only by the cap).

  Returns:
    The decoded category.

  Raises:
    FileNotFoundError: a missing folder, train/good, test, or mask file.
    ValueError: an undecodable image or mask, a mask of the wrong size, an
      empty train/good, or a test set without normals or without anomalies.
  """
  root, size, channels = config.path, config.image_size, config.channels
  if not os.path.isdir(root):
    raise FileNotFoundError(f'Category folder not found: {root}')
  train_dir = os.path.join(root, 'train', NORMAL)
  if not os.path.isdir(train_dir):
    raise FileNotFoundError(
        f'No train/{NORMAL} folder in {root} (expected {train_dir}); a folder '
        'source needs the MVTec AD layout train/good, test/<type>, '
        'ground_truth/<type>.')
  test_dir = os.path.join(root, 'test')
  if not os.path.isdir(test_dir):
    raise FileNotFoundError(f'No test folder in {root} (expected {test_dir}).')
  ground_truth = os.path.join(root, 'ground_truth')
  has_masks = os.path.isdir(ground_truth)

  generator = protocols.rng(seed, 'cap')
  train_paths = _cap(list_images(train_dir), config.max_per_class, generator)
  if not train_paths:
    raise ValueError(f'No images in {train_dir}.')
  kinds = sorted(d for d in os.listdir(test_dir)
                 if os.path.isdir(os.path.join(test_dir, d)) and
                 not d.startswith('.'))
  test_paths, test_kinds = [], []
  for kind in kinds:
    paths = _cap(list_images(os.path.join(test_dir, kind)),
                 config.max_per_class, generator)
    test_paths += paths
    test_kinds += [kind] * len(paths)
  test_kinds = np.asarray(test_kinds, dtype=str)
  test_y = (test_kinds != NORMAL).astype(np.int32)
  if not test_y.any() or test_y.all():
    raise ValueError(
        f'The test folder {test_dir} needs normal images (test/{NORMAL}) and '
        f'defective ones (test/<type>); it has sub-folders {kinds} with '
        f'{int((test_y == 0).sum())} normal and {int(test_y.sum())} defective '
        'images.')
  mask_paths = []
  if has_masks:  # Check every mask exists before the slow decoding.
    mask_paths = [
        _mask_path(ground_truth, kind, path) if kind != NORMAL else None
        for kind, path in zip(test_kinds, test_paths)
    ]

  train_u8, train_sizes = _decode_all(train_paths, size, channels)
  test_u8, test_sizes = _decode_all(test_paths, size, channels)
  test_masks = None
  notes = [images.size_note(
      {(h, w) for w, h in train_sizes + test_sizes}, size,
      f'folder {os.path.basename(os.path.normpath(root))} images')]
  if has_masks:
    def mask(mask_path: str | None, path: str,
             original: tuple[int, int]) -> np.ndarray:
      if mask_path is None:  # A normal image.
        return np.zeros((size, size), bool)
      return read_mask(mask_path, path, original, size)

    test_masks = np.stack(_threaded(mask, mask_paths, test_paths, test_sizes))
    empty = int(((test_masks.sum(axis=(1, 2)) == 0) & (test_y == 1)).sum())
    notes.append(f'masks resized to {size}x{size} (nearest) and binarised')
    if empty:
      logging.warning('%d defect masks are empty at %dx%d.', empty, size, size)
      notes.append(f'{empty} defect masks are all zero at {size}x{size}')
  else:
    notes.append(f'no ground_truth folder in {root}: no masks')
  notes.append(f"images read as {'grayscale' if channels == 1 else 'RGB'} "
               '(PIL conversion where the files differ)')
  if config.max_per_class:
    notes.append(f'at most {config.max_per_class} images per folder (seeded)')
  return Category(
      train_x=train_u8,
      train_files=[os.path.relpath(p, root) for p in train_paths],
      test_x=test_u8, test_y=test_y, test_kinds=test_kinds,
      test_files=[os.path.relpath(p, root) for p in test_paths],
      test_masks=test_masks, notes=notes)
