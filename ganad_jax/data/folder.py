"""An MVTec-AD-style category folder: train/good, test/<type>, ground_truth.

Layout (MVTec AD, and the Magnetic-Tile copy in ../shared/data):

  <path>/train/good/*                       defect-free training images
  <path>/test/good/*                        defect-free test images
  <path>/test/<type>/*                      defective test images, one folder
                                            per defect type
  <path>/ground_truth/<type>/<stem>_mask.png  a mask per defective image

Any format PIL reads, any size. Images are decoded by the rule of
`images.pil_to_uint8` (scaled by the file's declared sample type, never by
its values; a file that fits no rule is refused), become `channels`-channel
uint8, are resized (PIL bilinear) to image_size x image_size (or x
image_width) and scaled to [-1, 1]. JPEGs are decoded
with PIL's `draft` mode, which lets libjpeg shrink by 1/2, 1/4 or 1/8 while
decoding, never below image_size, before the bilinear resize: several times
faster on large photos, with the same result up to resampling noise.

Masks: a pixel is a defect when it is non-zero in any colour channel of the
mask file at its own bit depth (`images.mask_defects`); the defect map is
resized with NEAREST. A defective image whose mask has no defect pixel at
native resolution is refused (EmptyMaskError), or kept with an all-zero mask
and named in the notes when data.empty_masks='keep'; a mask that loses its
pixels only on downsizing is a note and a warning. Without a `ground_truth`
folder there are no masks (Split.masks is None); with one, every defective
image must have its mask.

Duplicates: the same sample must not enter the pool twice, so two files of
one stem in a folder (x.png, x.jpg) and two files anywhere in train/good and
test/* with identical decoded pixels are refused (DuplicateImageError),
naming both. File names are sorted, so loading is deterministic. A test/<type>
folder with no image is warned about and listed in info['empty_kinds'].
"""

from collections.abc import Callable, Iterable
from concurrent import futures
import dataclasses
import hashlib
import os
from typing import Any

from absl import logging
import ml_collections
import numpy as np
from PIL import Image

from ganad_jax.configs import data as data_config
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
    train_x: uint8 (N, H, W, C), train/good (H = W = image_size unless
      image_width is set).
    train_files: paths relative to the folder, aligned with train_x.
    test_x: uint8 (M, H, W, C), test/*, sorted by type and name.
    test_y: int32 (M,), 0 for test/good, 1 otherwise.
    test_kinds: str (M,), the test sub-folder name.
    test_files: paths relative to the folder, aligned with test_x.
    test_masks: bool (M, H, W), or None without ground_truth.
    notes: notes for info['notes'].
    empty_kinds: the test sub-folders that hold no image (a warning and a
      note each: they are in no per-kind table).
  """
  train_x: np.ndarray
  train_files: list[str]
  test_x: np.ndarray
  test_y: np.ndarray
  test_kinds: np.ndarray
  test_files: list[str]
  test_masks: np.ndarray | None
  notes: list[str]
  empty_kinds: list[str] = dataclasses.field(default_factory=list)


def list_images(folder: str) -> list[str]:
  """Returns the sorted paths of the image files (by extension) in a folder."""
  extensions = _image_extensions()
  return [
      os.path.join(folder, name) for name in sorted(os.listdir(folder))
      if not name.startswith('.') and
      os.path.splitext(name)[1].lower() in extensions and
      os.path.isfile(os.path.join(folder, name))
  ]


class DuplicateImageError(ValueError):
  """The same sample twice in a folder's pool; names both files."""


class EmptyMaskError(ValueError):
  """A defective image whose mask file marks no defect pixel."""


@dataclasses.dataclass(frozen=True)
class Decoded:
  """One decoded image.

  Attributes:
    image: uint8 (height, width, channels).
    original: the file's (width, height).
    digest: a digest of the decoded pixels (after the decoding rule and the
      channel conversion, before resizing), with their shape.
    drafted: True when libjpeg decoded below the native resolution (draft
      mode), so `digest` is of that reduced decode.
  """
  image: np.ndarray
  original: tuple[int, int]
  digest: str
  drafted: bool


def _digest(array: np.ndarray) -> str:
  return hashlib.blake2b(str(array.shape).encode() + array.tobytes(),
                         digest_size=16).hexdigest()


def read_image(path: str, size: int | tuple[int, int], channels: int,
               float_scale: float = 1.0, draft: bool = True) -> Decoded:
  """Decodes one image to uint8 (height, width, channels) by `images`' rule.

  Args:
    path: the image file.
    size: output side, or the output (height, width).
    channels: 1 or 3.
    float_scale: the declared maximum of float files (data.float_scale).
    draft: let libjpeg decode JPEGs at 1/2, 1/4 or 1/8 scale (never below
      size); False decodes at native resolution.

  Returns:
    The decoded image, its original size and its pixel digest.

  Raises:
    ValueError: naming the file when PIL cannot decode it or its values fit
      no decoding rule (images.ImageDecodeError).
  """
  try:
    with Image.open(path) as image:
      original = image.size
      if draft and image.format == 'JPEG':
        height, width = images.shape_of(size)
        image.draft('L' if channels == 1 else 'RGB', (width, height))
      drafted = image.size != original
      array = images.pil_to_uint8(image, channels, path, float_scale)
  except images.ImageDecodeError:
    raise
  except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
    raise ValueError(f'Cannot decode image {path}: {e}') from e
  return Decoded(image=images.resize_uint8([array], size)[0],
                 original=original, digest=_digest(array), drafted=drafted)


def read_mask(path: str, image_path: str, image_size: tuple[int, int],
              size: int | tuple[int, int]) -> tuple[np.ndarray, bool]:
  """Decodes one mask to bool (height, width) by `images.mask_defects`' rule.

  A pixel is a defect when it is non-zero in any colour channel of the file
  at its own bit depth; the defect map is then resized with NEAREST.

  Args:
    path: the mask file.
    image_path: its image, for error messages.
    image_size: the image's original (width, height); the mask must match.
    size: output side, or the output (height, width).

  Returns:
    (the resized binary mask, whether the file has any defect pixel at its
    native resolution).

  Raises:
    ValueError: naming the files when the mask cannot be decoded, has no
      mask rule, or its size differs from its image's.
  """
  try:
    with Image.open(path) as mask:
      if mask.size != image_size:
        raise ValueError(
            f'Mask {path} is {mask.size[0]}x{mask.size[1]} (WxH) but its image '
            f'{image_path} is {image_size[0]}x{image_size[1]}.')
      defect = images.mask_defects(mask, path)
  except (OSError, SyntaxError, Image.DecompressionBombError) as e:
    raise ValueError(f'Cannot decode mask {path}: {e}') from e
  height, width = images.shape_of(size)
  resized = Image.fromarray(defect.astype(np.uint8) * 255).resize(
      (width, height), Image.Resampling.NEAREST)
  return np.asarray(resized) > 0, bool(defect.any())


def check_same_stems(paths: list[str]) -> None:
  """Refuses two image files in one folder with one stem (x.png, x.jpg).

  Args:
    paths: image files.

  Raises:
    DuplicateImageError: naming both files.
  """
  seen = {}
  for path in paths:
    key = os.path.splitext(path)[0]
    if key in seen:
      raise DuplicateImageError(
          f'Images {seen[key]} and {path} share a name stem: one sample in '
          'two files would enter the pool twice (leakage across train / val '
          '/ test); remove one.')
    seen[key] = path


def check_duplicates(paths: list[str], decoded: list[Decoded], channels: int,
                     float_scale: float, root: str = '') -> None:
  """Refuses two files whose decoded pixels are identical.

  Digests are of the pixels after the decoding rule and channel conversion,
  at native resolution, so a lossless copy under another name or format is
  caught (a re-encoded JPEG is not: near-duplicates are not detected). A
  JPEG decoded in draft mode is digested at its reduced scale; when such
  digests collide, both files are decoded again at native resolution and
  refused only if those digests match too.

  Args:
    paths: the image files, aligned with `decoded`.
    decoded: their decodes.
    channels: 1 or 3.
    float_scale: data.float_scale.
    root: the messages name files relative to this folder (if given).

  Raises:
    DuplicateImageError: naming both files.
  """
  first = {}
  for path, item in zip(paths, decoded):
    if item.digest not in first:
      first[item.digest] = (path, item)
      continue
    other, other_item = first[item.digest]
    if item.drafted or other_item.drafted:
      native = [read_image(p, 16, channels, float_scale, draft=False).digest
                for p in (other, path)]
      if native[0] != native[1]:
        continue
    if root:
      other, path = os.path.relpath(other, root), os.path.relpath(path, root)
    raise DuplicateImageError(
        f'Images {other} and {path} hold identical pixels '
        f'({item.original[0]}x{item.original[1]} WxH, decoded): the same '
        'sample twice (leakage across train / val / test); remove one.')


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


def _decode_all(paths: list[str], size: tuple[int, int], channels: int,
                float_scale: float) -> list[Decoded]:
  """Decodes images (threaded)."""
  return _threaded(lambda p: read_image(p, size, channels, float_scale),
                   paths)


def _stack(decoded: list[Decoded], size: tuple[int, int],
           channels: int) -> np.ndarray:
  if not decoded:
    return np.zeros((0, *size, channels), np.uint8)
  return np.stack([d.image for d in decoded])


def load(config: ml_collections.ConfigDict, seed: int) -> Category:
  """Reads a category folder.

  Args:
    config: the `data` sub-config (path, image_size, image_width, channels,
      max_per_class: a per-folder cap applied, seeded, before decoding).
    seed: the split seed (used only by the cap).

  Returns:
    The decoded category.

  Raises:
    FileNotFoundError: a missing folder, train/good, test, or mask file.
    ValueError: an undecodable image or mask, a file whose values fit no
      decoding rule, a mask of the wrong size, an empty train/good, a test
      set without normals or without anomalies; DuplicateImageError (two
      files of one stem in a folder, or two files with identical decoded
      pixels anywhere in train/good and test); EmptyMaskError (a defective
      image whose mask has no defect pixel, unless data.empty_masks=keep).
  """
  root, channels = config.path, config.channels
  size = data_config.image_shape(config)  # (height, width).
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
  check_same_stems(list_images(train_dir))
  train_paths = _cap(list_images(train_dir), config.max_per_class, generator)
  if not train_paths:
    raise ValueError(f'No images in {train_dir}.')
  kinds = sorted(d for d in os.listdir(test_dir)
                 if os.path.isdir(os.path.join(test_dir, d)) and
                 not d.startswith('.'))
  test_paths, test_kinds, empty_kinds = [], [], []
  for kind in kinds:
    listed = list_images(os.path.join(test_dir, kind))
    if not listed:
      empty_kinds.append(kind)
      logging.warning('%s holds no image: kind %r is left out of the per-kind table '
                      '(results.json data.empty_kinds).', os.path.join(test_dir, kind), kind)
    check_same_stems(listed)
    paths = _cap(listed, config.max_per_class, generator)
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

  train_decoded = _decode_all(train_paths, size, channels, config.float_scale)
  test_decoded = _decode_all(test_paths, size, channels, config.float_scale)
  train_u8 = _stack(train_decoded, size, channels)
  test_u8 = _stack(test_decoded, size, channels)
  train_sizes = [d.original for d in train_decoded]
  test_sizes = [d.original for d in test_decoded]
  test_masks = None
  notes = [images.size_note(
      {(h, w) for w, h in train_sizes + test_sizes}, size,
      f'folder {os.path.basename(os.path.normpath(root))} images')]
  notes.append(f'{len(train_paths) + len(test_paths)} images checked for '
               'duplicates (same stem in a folder; identical decoded pixels): '
               'none')
  if has_masks:
    def mask(mask_path: str | None, path: str,
             original: tuple[int, int]) -> tuple[np.ndarray, bool]:
      if mask_path is None:  # A normal image.
        return np.zeros(size, bool), False
      return read_mask(mask_path, path, original, size)

    read = _threaded(mask, mask_paths, test_paths, test_sizes)
    test_masks = np.stack([m for m, _ in read])
    empty_files = [
        os.path.relpath(mask_paths[i], root) for i, (_, native) in
        enumerate(read) if test_y[i] == 1 and not native]
    empty_images = [
        test_paths[i] for i, (_, native) in enumerate(read)
        if test_y[i] == 1 and not native]
    if empty_files and config.empty_masks == 'error':
      more = (f' (and {len(empty_files) - 1} more: '
              f"{', '.join(empty_files[1:6])}"
              f"{', ...' if len(empty_files) > 6 else ''})"
              if len(empty_files) > 1 else '')
      raise EmptyMaskError(
          f'Defective image {empty_images[0]} has an empty mask '
          f'{os.path.join(root, empty_files[0])} (no pixel non-zero at its '
          f'native resolution){more}; mark the defect, or set data.empty_masks=keep to keep '
          'such images with all-zero masks.')
    vanished = [
        os.path.relpath(mask_paths[i], root) for i, (m, native) in
        enumerate(read) if native and not m.any()]
    notes.append(f'masks: a pixel is a defect when non-zero in any channel; '
                 f'resized to {size[0]}x{size[1]} (nearest)')
    if empty_files:
      logging.warning('%d defect masks are empty in their files (kept, '
                      'data.empty_masks=keep): %s', len(empty_files),
                      ', '.join(empty_files))
      notes.append(f'{len(empty_files)} defect masks empty in the files '
                   f"themselves, kept all zero: {', '.join(empty_files)}")
    if vanished:
      logging.warning('%d defect masks lose all their pixels at %dx%d '
                      '(nearest): %s', len(vanished), *size,
                      ', '.join(vanished[:10]) +
                      (', ...' if len(vanished) > 10 else ''))
      notes.append(f'{len(vanished)} defect masks lose all their pixels '
                   f'when resized to {size[0]}x{size[1]} (nearest)')
  else:
    notes.append(f'no ground_truth folder in {root}: no masks')
  if empty_kinds:
    notes.append(f"test folders without images, in no per-kind table: {', '.join(empty_kinds)}")
  check_duplicates(train_paths + test_paths, train_decoded + test_decoded,
                   channels, config.float_scale, root)
  notes.append(f"images read as {'grayscale' if channels == 1 else 'RGB'} "
               '(PIL conversion where the files differ)')
  if config.max_per_class:
    notes.append(f'at most {config.max_per_class} images per folder (seeded)')
  return Category(
      train_x=train_u8,
      train_files=[os.path.relpath(p, root) for p in train_paths],
      test_x=test_u8, test_y=test_y, test_kinds=test_kinds,
      test_files=[os.path.relpath(p, root) for p in test_paths],
      test_masks=test_masks, notes=notes, empty_kinds=empty_kinds)
