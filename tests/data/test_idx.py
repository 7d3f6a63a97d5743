"""Tests of `data.idx`: MNIST-format IDX files, their errors and duplicate samples."""

import gzip
import os
import struct

import numpy as np
import pytest

from ganad_jax import data
from ganad_jax.data import idx
import helpers

MNIST_DIR = os.path.join(helpers.SHARED_DATA, 'mnist')
MNIST_T10K_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def _write_idx(folder, prefix, images, labels, gz, magic_images=2051,
               magic_labels=2049, n_labels=None):
  n, rows, cols = images.shape
  suffix = '.gz' if gz else ''
  opener = gzip.open if gz else open
  with opener(os.path.join(folder, f'{prefix}-images-idx3-ubyte{suffix}'),
              'wb') as f:
    f.write(struct.pack('>iiii', magic_images, n, rows, cols))
    f.write(images.astype(np.uint8).tobytes())
  with opener(os.path.join(folder, f'{prefix}-labels-idx1-ubyte{suffix}'),
              'wb') as f:
    f.write(struct.pack('>ii', magic_labels,
                        len(labels) if n_labels is None else n_labels))
    f.write(labels.astype(np.uint8).tobytes())


def _tiny_idx(folder):
  rng = np.random.default_rng(0)
  train = rng.integers(0, 256, (40, 16, 16), dtype=np.uint8)
  test = rng.integers(0, 256, (20, 16, 16), dtype=np.uint8)
  train_labels = np.arange(40) % 4
  test_labels = np.arange(20) % 4
  _write_idx(folder, 'train', train, train_labels, gz=False)
  _write_idx(folder, 't10k', test, test_labels, gz=True)
  # Pairs are pooled in sorted name order: t10k, then train.
  return np.concatenate([test, train]), np.concatenate([test_labels,
                                                        train_labels])


def test_idx_tiny_gz_and_raw(tmp_path):
  raw, labels = _tiny_idx(str(tmp_path))
  pairs = idx.find_pairs(str(tmp_path))
  assert [os.path.basename(p[0]) for p in pairs] == [
      't10k-images-idx3-ubyte.gz', 'train-images-idx3-ubyte']
  np.testing.assert_array_equal(idx.read_images(pairs[0][0]), raw[:20])
  s = data.load(helpers.data_config(source='idx', path=str(tmp_path), image_size=16,
                                    class_index=2, val_fraction=0.2), seed=0)
  helpers.check_splits(s, (16, 16, 1))
  assert s.info['sizes']['pool'] == 60
  assert s.info['class_counts'] == {'0': 15, '1': 15, '2': 15, '3': 15}
  # Every pooled image lands in exactly one split (random images: unique).
  rows = {image.tobytes() for image in raw}
  got = [image.tobytes() for split in (s.train, s.val, s.test)
         for image in np.rint((split.x[..., 0] + 1) * 127.5).astype(np.uint8)]
  assert len(got) == len(set(got)) == 60 and set(got) == rows
  # 16x16 needs no resize: values are exactly x / 127.5 - 1 of some image.
  expected = raw.astype(np.float32) / 127.5 - 1
  anomalies = s.test.x[s.test.y == 1][..., 0]
  pool_2 = expected[labels == 2]
  for image in anomalies:
    assert np.isclose(pool_2, image, atol=1e-6).all(axis=(1, 2)).any()


@pytest.mark.parametrize('case,error,match', [
    ('magic', ValueError, r'train-images-idx3-ubyte has magic number 2049'),
    ('count', ValueError, r'holds 40 images but .*train-labels.* 39 labels'),
    ('truncated', ValueError, r'train-images-idx3-ubyte holds \d+ bytes'),
    ('no_labels', FileNotFoundError, r'has no labels file; expected .*'
     r'train-labels-idx1-ubyte'),
    ('empty', FileNotFoundError, r'No IDX images file'),
    ('missing', FileNotFoundError, r'not found: .*nowhere'),
])
def test_idx_bad_input(tmp_path, case, error, match):
  folder = str(tmp_path)
  images = np.zeros((40, 16, 16), np.uint8)
  labels = np.arange(40) % 4
  path = folder
  if case == 'magic':
    _write_idx(folder, 'train', images, labels, gz=False, magic_images=2049)
  elif case == 'count':
    _write_idx(folder, 'train', images, labels[:39], gz=False)
  elif case == 'truncated':
    _write_idx(folder, 'train', images, labels, gz=False)
    name = os.path.join(folder, 'train-images-idx3-ubyte')
    with open(name, 'rb') as f:
      content = f.read()
    with open(name, 'wb') as f:
      f.write(content[:-7])
  elif case == 'no_labels':
    _write_idx(folder, 'train', images, labels, gz=False)
    os.remove(os.path.join(folder, 'train-labels-idx1-ubyte'))
  elif case == 'missing':
    path = os.path.join(folder, 'nowhere')
  with pytest.raises(error, match=match):
    data.load(helpers.data_config(source='idx', path=path, image_size=16), seed=0)


def test_idx_empty_class_is_refused(tmp_path):
  labels = np.array([0, 1, 2, 4] * 10)  # No 3.
  _write_idx(str(tmp_path), 'train', np.zeros((40, 16, 16)), labels, gz=True)
  with pytest.raises(ValueError, match=r"Class 3 \('3'\) .* has 0 examples"):
    data.load(helpers.data_config(source='idx', path=str(tmp_path), image_size=16,
                                  class_index=3), seed=0)


def test_idx_real_mnist():
  if not os.path.isdir(MNIST_DIR):
    pytest.skip(f'real MNIST not present at {MNIST_DIR}')
  s = data.load(helpers.data_config(source='idx', path=MNIST_DIR, class_index=1), seed=0)
  helpers.check_splits(s, (32, 32, 1))
  assert s.info['sizes']['pool'] == 10_000
  assert list(s.info['class_counts'].values()) == MNIST_T10K_COUNTS
  assert (s.test.y == 1).sum() == 1135
  assert s.info['sizes']['train'] + s.info['sizes']['val'] == (
      8865 - helpers.round_half(0.2, 8865))


def _write_idx_images(folder_path, prefix, x, gz):
  opener, suffix = (gzip.open, '.gz') if gz else (open, '')
  with opener(os.path.join(folder_path, f'{prefix}-images-idx3-ubyte{suffix}'),
              'wb') as f:
    f.write(struct.pack('>iiii', 2051, *x.shape) + x.tobytes())
  with opener(os.path.join(folder_path, f'{prefix}-labels-idx1-ubyte{suffix}'),
              'wb') as f:
    f.write(struct.pack('>ii', 2049, len(x)) +
            (np.arange(len(x)) % 2).astype(np.uint8).tobytes())


def _idx_images(seed=0):
  return np.random.default_rng(seed).integers(0, 256, (8, 16, 16), np.uint8)


def test_idx_same_file_gzipped_and_not_is_refused(tmp_path):
  _write_idx_images(str(tmp_path), 't10k', _idx_images(), gz=True)
  _write_idx_images(str(tmp_path), 't10k', _idx_images(), gz=False)
  with pytest.raises(idx.DuplicateSampleError,
                     match=r'IDX images .*t10k-images-idx3-ubyte and .*'
                     r't10k-images-idx3-ubyte\.gz are one file in two forms'):
    data.load(helpers.data_config(source='idx', path=str(tmp_path), image_size=16),
              seed=0)


def test_idx_same_content_under_two_prefixes_is_refused(tmp_path):
  _write_idx_images(str(tmp_path), 't10k', _idx_images(), gz=True)
  _write_idx_images(str(tmp_path), 'train', _idx_images(), gz=False)
  with pytest.raises(idx.DuplicateSampleError,
                     match=r'IDX images files t10k-images-idx3-ubyte\.gz and '
                     r'train-images-idx3-ubyte hold identical images'):
    data.load(helpers.data_config(source='idx', path=str(tmp_path), image_size=16),
              seed=0)


def test_idx_repeated_single_image_is_a_note(tmp_path):
  x = _idx_images()
  x[5] = x[2]
  _write_idx_images(str(tmp_path), 'train', x, gz=False)
  s = data.load(helpers.data_config(source='idx', path=str(tmp_path), image_size=16,
                                    val_fraction=0.5), seed=0)
  assert ("1 IDX images repeat an earlier image's pixels (first: image 5 of "
          'train-images-idx3-ubyte = image 2 of train-images-idx3-ubyte)'
          ) in s.info['notes']


@pytest.mark.parametrize('case,match', [
    ('identical', r"All the \d+ training images of IDX folder .* \(normal class '0'\) are "
                  r'identical: there is nothing to model'),
    ('blank', r"Every one of the \d+ training images of IDX folder .* \(normal class '0'\) is "
              r'blank \(one value in all its pixels\)'),
])
def test_idx_training_images_all_identical_or_all_blank_are_refused(tmp_path, case, match):
  x = np.random.default_rng(0).integers(0, 256, (16, 16, 16), np.uint8)
  normal = np.arange(16) % 2 == 0  # Class 0: the normals of normal_class.
  varied = x[normal]
  x[normal] = x[0] if case == 'identical' else np.arange(8, dtype=np.uint8)[:, None, None]
  _write_idx_images(str(tmp_path), 'train', x, gz=False)
  config = helpers.data_config(source='idx', path=str(tmp_path), image_size=16,
                               protocol='normal_class', class_index=0, test_fraction=0.25,
                               val_fraction=0.2)
  with pytest.raises(ValueError, match=match):
    data.load(config, seed=0)
  varied[:2] = 0 if case == 'blank' else varied[2]  # A few such images among varied ones pass.
  x[normal] = varied
  _write_idx_images(str(tmp_path), 'train', x, gz=False)
  assert len(data.load(config, seed=0).train) == 5
