"""MNIST-format IDX files (gzipped or not) from a folder, all pairs pooled.

A folder holds pairs `<prefix>-images-idx3-ubyte[.gz]` and
`<prefix>-labels-idx1-ubyte[.gz]` (MNIST: prefixes 'train' and 't10k'; the
'<prefix>-images.idx3-ubyte' spelling is accepted too). Headers are
big-endian: magic 2051 (images: count, rows, cols) or 2049 (labels: count).

The same sample must not enter the pool twice: one images file present both
gzipped and not (`x-images-idx3-ubyte` and `x-images-idx3-ubyte.gz`) is
refused, and so are two images files with identical content (one file
copied under another prefix), naming both (DuplicateSampleError). Single
images repeating another's pixels are counted in a note and a warning.
"""

import gzip
import hashlib
import os
import re

from absl import logging
import ml_collections
import numpy as np

from ganad_jax.data import images
from ganad_jax.data import pool

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
_IMAGES_RE = re.compile(r'^(?P<prefix>.+)-images[-.]idx3-ubyte(?P<gz>\.gz)?$')


class DuplicateSampleError(ValueError):
  """The same IDX file or image twice in the pool; names both."""


def _read_bytes(path: str) -> bytes:
  opener = gzip.open if path.endswith('.gz') else open
  try:
    with opener(path, 'rb') as f:
      return f.read()
  except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError.
    raise ValueError(f'Cannot read IDX file {path}: {e}') from e


def _header(data: bytes, path: str, magic: int, dims: int) -> tuple[int, ...]:
  """Returns the `dims` header sizes after checking the magic number."""
  if len(data) < 4 * (dims + 1):
    raise ValueError(
        f'IDX file {path} is too short for its header ({len(data)} bytes).')
  header = np.frombuffer(data, dtype='>u4', count=dims + 1)
  if int(header[0]) != magic:
    raise ValueError(
        f'IDX file {path} has magic number {int(header[0])}; expected {magic} '
        f"({'images' if magic == IMAGES_MAGIC else 'labels'}).")
  return tuple(int(v) for v in header[1:])


def read_images(path: str) -> np.ndarray:
  """Reads an idx3 images file into uint8 (N, rows, cols).

  Args:
    path: the file, gzipped if its name ends in '.gz'.

  Returns:
    uint8 array (N, rows, cols).

  Raises:
    ValueError: naming the file, on a bad magic number or a wrong length.
  """
  data = _read_bytes(path)
  n, rows, cols = _header(data, path, IMAGES_MAGIC, 3)
  expected = 16 + n * rows * cols
  if len(data) != expected:
    raise ValueError(
        f'IDX file {path} holds {len(data)} bytes; its header ({n} images of '
        f'{rows}x{cols}) needs {expected}.')
  return np.frombuffer(data, np.uint8, offset=16).reshape(n, rows, cols)


def read_labels(path: str) -> np.ndarray:
  """Reads an idx1 labels file into uint8 (N,).

  Args:
    path: the file, gzipped if its name ends in '.gz'.

  Returns:
    uint8 array (N,).

  Raises:
    ValueError: naming the file, on a bad magic number or a wrong length.
  """
  data = _read_bytes(path)
  n, = _header(data, path, LABELS_MAGIC, 1)
  if len(data) != 8 + n:
    raise ValueError(
        f'IDX file {path} holds {len(data)} bytes; its header ({n} labels) '
        f'needs {8 + n}.')
  return np.frombuffer(data, np.uint8, offset=8)


def find_pairs(folder: str) -> list[tuple[str, str]]:
  """Finds (images file, labels file) pairs in a folder, sorted by name.

  Args:
    folder: the folder to search (not recursive).

  Returns:
    The pairs, sorted by images file name.

  Raises:
    FileNotFoundError: if the folder is missing, holds no images file, or an
      images file lacks its labels file.
    DuplicateSampleError: an images file present both gzipped and not.
  """
  if not os.path.isdir(folder):
    raise FileNotFoundError(f'IDX folder not found: {folder}')
  names = sorted(os.listdir(folder))
  pairs, seen = [], {}
  for name in names:
    match = _IMAGES_RE.match(name)
    if not match:
      continue
    prefix, gz = match['prefix'], match['gz'] or ''
    if prefix in seen:
      raise DuplicateSampleError(
          f'IDX images {os.path.join(folder, seen[prefix])} and '
          f'{os.path.join(folder, name)} are one file in two forms (gzipped '
          'and not): its images would enter the pool twice; remove one.')
    seen[prefix] = name
    sep = '-' if '-images-idx3' in name else '.'
    candidates = [f'{prefix}-labels{sep}idx1-ubyte{ext}'
                  for ext in (gz, '' if gz else '.gz')]
    found = [c for c in candidates if c in names]
    if not found:
      raise FileNotFoundError(
          f'IDX images file {os.path.join(folder, name)} has no labels file; '
          f'expected {os.path.join(folder, candidates[0])}.')
    pairs.append((os.path.join(folder, name), os.path.join(folder, found[0])))
  if not pairs:
    raise FileNotFoundError(
        f'No IDX images file (*-images-idx3-ubyte or *-images-idx3-ubyte.gz) '
        f'in {folder}; it holds: {names[:20]}.')
  return pairs


def _check_duplicates(raw: list[np.ndarray], names: list[str]) -> str:
  """Refuses two images files with the same content; counts repeated images.

  Args:
    raw: uint8 (N_i, rows, cols) per images file.
    names: the images files' names, aligned with raw.

  Returns:
    A note: how many images repeat an earlier image's pixels, with the first
    such pair (a dataset may hold identical images of distinct samples, so
    single repeats are reported, not refused).

  Raises:
    DuplicateSampleError: two files with identical images, naming both.
  """
  files = {}
  for name, x in zip(names, raw):
    key = hashlib.blake2b(str(x.shape).encode() + x.tobytes()).digest()
    if key in files:
      raise DuplicateSampleError(
          f'IDX images files {files[key]} and {name} hold identical images: '
          'the same samples twice in the pool (leakage across train / val / '
          'test); remove one.')
    files[key] = name
  first, repeats, example = {}, 0, ''
  for name, x in zip(names, raw):
    for i, image in enumerate(x):
      key = hashlib.blake2b(image.tobytes(), digest_size=16).digest()
      if key in first:
        repeats += 1
        if not example:
          example = (f' (first: image {i} of {name} = image {first[key][1]} '
                     f'of {first[key][0]})')
      else:
        first[key] = (name, i)
  if repeats:
    logging.warning('%d IDX images repeat an earlier image%s.', repeats,
                    example)
    return f'{repeats} IDX images repeat an earlier image\'s pixels{example}'
  return f'{sum(len(x) for x in raw)} IDX images checked: no repeated pixels'


def load(config: ml_collections.ConfigDict) -> pool.Pool:
  """Loads and pools every IDX pair in config.path, resized to image_size.

  Args:
    config: the `data` sub-config (path, image_size, channels).

  Returns:
    The pooled images; class ids are the labels, classes 0..max(label).

  Raises:
    FileNotFoundError, ValueError: see `find_pairs`, `read_images`; also when
      the image and label counts of a pair differ.
    DuplicateSampleError: two images files with identical content.
  """
  raw, labels, files = [], [], []
  for images_path, labels_path in find_pairs(config.path):
    x = read_images(images_path)
    y = read_labels(labels_path)
    if len(x) != len(y):
      raise ValueError(
          f'IDX pair disagrees: {images_path} holds {len(x)} images but '
          f'{labels_path} holds {len(y)} labels.')
    if raw and x.shape[1:] != raw[0].shape[1:]:
      raise ValueError(
          f'IDX images in {images_path} are {x.shape[1]}x{x.shape[2]}, those '
          f'in {files[0][0]} {raw[0].shape[1]}x{raw[0].shape[2]}.')
    logging.info('Read %d images from %s.', len(x), images_path)
    raw.append(x)
    labels.append(y)
    files.append((os.path.basename(images_path), os.path.basename(labels_path)))
  duplicates_note = _check_duplicates(raw, [f[0] for f in files])
  raw = np.concatenate(raw)[..., None]
  labels = np.concatenate(labels).astype(np.int64)
  x = images.prepare_uint8(raw, config.image_size, config.channels)
  notes = [
      images.size_note({raw.shape[1:3]}, config.image_size, 'IDX images'),
      'pooled IDX files: ' + ', '.join(f[0] for f in files),
      duplicates_note,
  ]
  if config.channels == 3:
    notes.append('grayscale IDX images replicated to 3 channels (RGB)')
  n_classes = int(labels.max()) + 1 if len(labels) else 0
  return pool.Pool(
      x=x, labels=labels, class_names=tuple(str(i) for i in range(n_classes)),
      name=f'IDX folder {config.path}', notes=tuple(notes),
      info={'files': [list(f) for f in files],
            'original_size': list(raw.shape[1:3])})
