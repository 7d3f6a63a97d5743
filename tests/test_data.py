"""Tests of ganad_jax.data: sources, protocols, `load` and its errors."""

import csv
import gzip
import json
import os
import struct

import hypothesis
from hypothesis import strategies as st
import numpy as np
from PIL import Image
import pytest
from sklearn import datasets
import tensorflow_datasets as tfds

from ganad_jax import configs
from ganad_jax import data
from ganad_jax.data import idx
from ganad_jax.data import protocols
from ganad_jax.data import tfds_source

SHARED = os.path.join(os.path.dirname(__file__), '..', '..', 'shared', 'data')
MNIST_DIR = os.path.join(SHARED, 'mnist')
TILE_DIR = os.path.join(SHARED, 'magnetic_tile')
DIGIT_COUNTS = np.array([178, 182, 177, 183, 181, 182, 181, 179, 174, 180])
MNIST_T10K_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def _config(**overrides):
  config = configs.data.data_config()
  for key, value in overrides.items():
    config[key] = value
  return config


def _round(fraction, n):
  return int(np.floor(fraction * n + 0.5))


def _check_splits(s, image_shape=None):
  """Checks the invariants every Splits must satisfy."""
  for split in (s.train, s.val, s.test):
    assert split.x.dtype == np.float32
    assert split.y.dtype == np.int32
    assert split.kinds.dtype.kind == 'U'
    assert len(split.x) == len(split.y) == len(split.kinds)
    assert set(np.unique(split.y)) <= {0, 1}
    if image_shape is not None:
      assert split.x.shape[1:] == image_shape
      assert split.x.min() >= -1.0 and split.x.max() <= 1.0
  assert not s.train.y.any() and not s.val.y.any()
  assert set(np.unique(s.test.y)) == {0, 1}
  json.dumps(s.info)  # JSON-serialisable.
  assert isinstance(s.info['notes'], list) and s.info['notes']
  assert s.info['sizes']['train'] == len(s.train.y)
  assert s.info['sizes']['val'] == len(s.val.y)
  assert s.info['sizes']['test'] == len(s.test.y)


# ----------------------------------------------------------------- config ---


def test_default_config_fields():
  assert configs.data.data_config().to_dict() == {
      'source': 'digits', 'protocol': 'anomaly_class', 'class_index': 0,
      'class_name': '', 'image_size': 32, 'channels': 1, 'path': '',
      'tfds_name': 'mnist', 'data_dir': '', 'tfds_splits': ('train', 'test'),
      'test_fraction': 0.2, 'val_fraction': 0.1, 'max_per_class': 0,
      'label_column': 'label', 'categorical_columns': (), 'sklearn_name': 'breast_cancer',
      'float_scale': 1.0, 'empty_masks': 'error',
  }


# ----------------------------------------------------------------- digits ---


@pytest.mark.parametrize('size', [16, 32, 64])
@pytest.mark.parametrize('protocol', ['anomaly_class', 'normal_class'])
def test_digits_shapes_and_protocol_sizes(size, protocol):
  cls = 3
  s = data.load(_config(image_size=size, protocol=protocol, class_index=cls),
                seed=0)
  _check_splits(s, (size, size, 1))
  n_cls, n_rest = DIGIT_COUNTS[cls], DIGIT_COUNTS.sum() - DIGIT_COUNTS[cls]
  if protocol == 'anomaly_class':
    n_normal, n_anomalous = n_rest, n_cls
  else:
    n_normal, n_anomalous = n_cls, n_rest
  n_test_normal = _round(0.2, n_normal)
  n_val = _round(0.1, n_normal - n_test_normal)
  assert len(s.train.y) + len(s.val.y) == n_normal - n_test_normal
  assert len(s.val.y) == n_val
  assert (s.test.y == 0).sum() == n_test_normal
  assert (s.test.y == 1).sum() == n_anomalous
  assert len(s.train.y) + len(s.val.y) + len(s.test.y) == DIGIT_COUNTS.sum()
  anomalous = s.test.kinds[s.test.y == 1]
  if protocol == 'anomaly_class':
    assert set(anomalous) == {'3'}
    assert '3' not in set(s.train.kinds) | set(s.val.kinds)
    assert s.info['anomaly_classes'] == ['3']
  else:
    assert '3' not in set(anomalous) and len(set(anomalous)) == 9
    assert set(s.train.kinds) == set(s.val.kinds) == {'3'}
    assert s.info['normal_classes'] == ['3']
  assert s.info['class_name'] == '3'
  assert any('8x8 resized to' in n for n in s.info['notes'])


def test_digits_values_full_range_and_rgb():
  s = data.load(_config(image_size=16, channels=3), seed=0)
  _check_splits(s, (16, 16, 3))
  np.testing.assert_array_equal(s.train.x[..., 0], s.train.x[..., 2])
  assert s.train.x.min() == -1.0 and s.train.x.max() > 0.9


def test_digits_resize_matches_pil_bilinear():
  # Each 16x16 image is PIL's bilinear upsampling of a scaled 8x8 digit.
  s = data.load(_config(image_size=16, class_index=0,
                        protocol='normal_class'), seed=0)
  raw = datasets.load_digits().images.astype(np.float32) / 8 - 1
  expected = np.stack([np.asarray(Image.fromarray(im).resize(
      (16, 16), Image.Resampling.BILINEAR)) for im in raw])
  # Every loaded image is one of the expected ones.
  flat = expected.reshape(len(expected), -1)
  for image in s.test.x[:20, ..., 0]:
    assert np.isclose(flat, image.reshape(1, -1), atol=1e-6).all(axis=1).any()


def test_determinism_and_seed_dependence():
  config = _config(image_size=16)
  a, b = data.load(config, seed=1), data.load(config, seed=1)
  for role in ('train', 'val', 'test'):
    np.testing.assert_array_equal(getattr(a, role).x, getattr(b, role).x)
    np.testing.assert_array_equal(getattr(a, role).y, getattr(b, role).y)
    np.testing.assert_array_equal(getattr(a, role).kinds,
                                  getattr(b, role).kinds)
  assert a.info == b.info
  c = data.load(config, seed=2)
  assert c.train.x.shape == a.train.x.shape
  assert not np.array_equal(c.train.x, a.train.x)
  assert not np.array_equal(c.test.x, a.test.x)


def test_class_name_overrides_class_index():
  s = data.load(_config(image_size=16, class_index=0, class_name='7'), seed=0)
  assert s.info['class_index'] == 7
  assert set(s.test.kinds[s.test.y == 1]) == {'7'}


def test_max_per_class_caps_and_is_seeded():
  config = _config(image_size=16, max_per_class=50)
  s = data.load(config, seed=0)
  assert s.info['sizes']['kept'] == 500
  kinds = np.concatenate([s.train.kinds, s.val.kinds, s.test.kinds])
  assert all(n == 50 for n in np.unique(kinds, return_counts=True)[1])
  keep_a = protocols.cap_per_class(np.repeat(np.arange(3), 10), 4, seed=0)
  keep_b = protocols.cap_per_class(np.repeat(np.arange(3), 10), 4, seed=1)
  assert len(keep_a) == 12 and not np.array_equal(keep_a, keep_b)


# -------------------------------------------------------------- protocols ---


@hypothesis.settings(max_examples=40, deadline=None, database=None)
@hypothesis.given(
    counts=st.lists(st.integers(0, 40), min_size=2, max_size=5),
    protocol=st.sampled_from(['anomaly_class', 'normal_class']),
    seed=st.integers(0, 2**31 - 1))
def test_protocol_indices_partition_the_pool(counts, protocol, seed):
  labels = np.repeat(np.arange(len(counts)), counts)
  rng = np.random.default_rng(seed)
  labels = rng.permutation(labels)
  fn = protocols.PROTOCOLS[protocol]
  try:
    ind = fn(labels, 0, 0.2, 0.1, seed)
  except ValueError:
    return  # Too few examples for some split: refused with a message.
  all_ = np.concatenate([ind.train, ind.val, ind.test])
  assert len(np.unique(all_)) == len(all_) == len(labels)  # No overlap.
  is_anomaly = labels == 0 if protocol == 'anomaly_class' else labels != 0
  assert not is_anomaly[ind.train].any() and not is_anomaly[ind.val].any()
  np.testing.assert_array_equal(ind.test_y, is_anomaly[ind.test])
  n_normal = int((~is_anomaly).sum())
  assert (ind.test_y == 0).sum() == _round(0.2, n_normal)
  assert len(ind.val) == _round(0.1, n_normal - _round(0.2, n_normal))
  again = fn(labels, 0, 0.2, 0.1, seed)
  np.testing.assert_array_equal(again.test, ind.test)


def test_protocol_val_split_empty_is_refused():
  labels = np.repeat(np.arange(2), [5, 30])
  with pytest.raises(ValueError, match='validation split would be empty'):
    protocols.normal_class(labels, 0, 0.2, 0.1, seed=0)


# ------------------------------------------------------------------- tfds ---


@pytest.mark.parametrize('protocol', ['anomaly_class', 'normal_class'])
def test_tfds_mock_end_to_end(protocol):
  # mock_data patches tfds.data_source without TensorFlow; USE_CODE takes
  # the features from the mnist builder code, not from metadata files.
  config = _config(source='tfds', tfds_name='mnist', image_size=16,
                   protocol=protocol, class_name='1', channels=3)
  with tfds.testing.mock_data(num_examples=60,
                              policy=tfds.testing.MockPolicy.USE_CODE):
    s = data.load(config, seed=0)
  _check_splits(s, (16, 16, 3))
  assert s.info['sizes']['pool'] == 120  # Two pooled splits of 60.
  assert s.info['source_info']['split_sizes'] == {'train': 60, 'test': 60}
  assert sum(s.info['class_counts'].values()) == 120
  assert set(s.info['class_counts']) == {str(i) for i in range(10)}
  if protocol == 'anomaly_class':
    assert set(s.test.kinds[s.test.y == 1]) == {'1'}
  else:
    assert set(s.train.kinds) == {'1'}


def test_tfds_reader_batches_and_falls_back():

  class Batched(list):
    calls = 0

    def __getitems__(self, keys):
      Batched.calls += 1
      return [self[k] for k in keys]

  examples = [{'label': i} for i in range(2500)]
  assert tfds_source._read_batches(Batched(examples)) == examples
  assert Batched.calls == 3  # 1024 keys a call.
  assert tfds_source._read_batches(list(examples[:5])) == examples[:5]


# -------------------------------------------------------------------- idx ---


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
  s = data.load(_config(source='idx', path=str(tmp_path), image_size=16,
                        class_index=2, val_fraction=0.2), seed=0)
  _check_splits(s, (16, 16, 1))
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
    data.load(_config(source='idx', path=path, image_size=16), seed=0)


def test_idx_empty_class_is_refused(tmp_path):
  labels = np.array([0, 1, 2, 4] * 10)  # No 3.
  _write_idx(str(tmp_path), 'train', np.zeros((40, 16, 16)), labels, gz=True)
  with pytest.raises(ValueError, match=r"Class 3 \('3'\) .* has 0 examples"):
    data.load(_config(source='idx', path=str(tmp_path), image_size=16,
                      class_index=3), seed=0)


def test_idx_real_mnist():
  if not os.path.isdir(MNIST_DIR):
    pytest.skip(f'real MNIST not present at {MNIST_DIR}')
  s = data.load(_config(source='idx', path=MNIST_DIR, class_index=1), seed=0)
  _check_splits(s, (32, 32, 1))
  assert s.info['sizes']['pool'] == 10_000
  assert list(s.info['class_counts'].values()) == MNIST_T10K_COUNTS
  assert (s.test.y == 1).sum() == 1135
  assert s.info['sizes']['train'] + s.info['sizes']['val'] == (
      8865 - _round(0.2, 8865))


# ----------------------------------------------------------------- folder ---


def _image(path, size, mode, value=30):
  w, h = size
  array = np.full((h, w, 3) if mode == 'RGB' else (h, w), value, np.uint8)
  array[: h // 2] = 255 - value
  Image.fromarray(array).save(path)


def _mask(path, size, left_half=True):
  w, h = size
  array = np.zeros((h, w), np.uint8)
  if left_half:
    array[:, : w // 2] = 255
  Image.fromarray(array).save(path)


def _tiny_folder(root):
  """Writes an MVTec-like category: mixed formats, modes and sizes.

  Every image differs (the loader refuses identical pixels in two files).
  """
  value = iter(range(20, 40))
  os.makedirs(os.path.join(root, 'train', 'good'))
  for i in range(6):
    ext, mode = [('png', 'RGB'), ('jpg', 'L'), ('bmp', 'RGB')][i % 3]
    _image(os.path.join(root, 'train', 'good', f'{i:03d}.{ext}'),
           (20 + 4 * i, 30), mode, next(value))
  for kind, n in [('good', 2), ('scratch', 2), ('hole', 1)]:
    os.makedirs(os.path.join(root, 'test', kind))
    if kind != 'good':
      os.makedirs(os.path.join(root, 'ground_truth', kind))
    for i in range(n):
      size = (40, 24 + 8 * i)
      ext, mode = ('jpg', 'RGB') if i % 2 else ('png', 'L')
      _image(os.path.join(root, 'test', kind, f'{i:03d}.{ext}'), size, mode,
             next(value))
      if kind != 'good':
        _mask(os.path.join(root, 'ground_truth', kind, f'{i:03d}_mask.png'),
              size)
  with open(os.path.join(root, 'test', 'good', 'notes.txt'), 'w') as f:
    f.write('not an image')


@pytest.mark.parametrize('channels', [1, 3])
def test_folder_tiny(tmp_path, channels):
  root = str(tmp_path / 'cat')
  _tiny_folder(root)
  config = _config(source='folder', protocol='folder', path=root,
                   image_size=16, channels=channels, val_fraction=0.2)
  s = data.load(config, seed=0)
  _check_splits(s, (16, 16, channels))
  assert (len(s.train.y), len(s.val.y), len(s.test.y)) == (5, 1, 5)
  assert s.info['test_kinds'] == {'good': 2, 'hole': 1, 'scratch': 2}
  np.testing.assert_array_equal(s.test.y, s.test.kinds != 'good')
  for split in (s.train, s.val, s.test):
    assert split.masks.shape == split.x.shape[:3]
    assert split.masks.dtype == np.float32
    assert set(np.unique(split.masks)) <= {0.0, 1.0}
  assert not s.train.masks.any() and not s.val.masks.any()
  assert not s.test.masks[s.test.y == 0].any()
  for mask in s.test.masks[s.test.y == 1]:  # Left half set.
    assert mask[:, :8].all() and not mask[:, 8:].any()
  # Files line up with kinds, and top/bottom halves survive the resize.
  for file, kind in zip(s.info['files']['test'], s.test.kinds):
    assert file.split(os.sep)[:2] == ['test', kind]
  assert s.test.x[:, :4].mean() > 0.6 and s.test.x[:, -4:].mean() < -0.6
  again = data.load(config, seed=0)
  np.testing.assert_array_equal(again.test.x, s.test.x)
  other = data.load(config, seed=3)
  assert other.info['files']['val'] != s.info['files']['val'] or (
      other.info['files']['test'] != s.info['files']['test'])


def test_folder_without_ground_truth_has_no_masks(tmp_path):
  root = str(tmp_path / 'cat')
  _tiny_folder(root)
  os.rename(os.path.join(root, 'ground_truth'), os.path.join(root, 'gt_old'))
  s = data.load(_config(source='folder', protocol='folder', path=root,
                        val_fraction=0.2), seed=0)
  assert s.train.masks is None and s.test.masks is None
  assert any('no masks' in n for n in s.info['notes'])


@pytest.mark.parametrize('case,error,match', [
    ('missing', FileNotFoundError, r"'folder' not found: .*nowhere"),
    ('no_train_good', FileNotFoundError, r'No train/good folder in'),
    ('bad_image', ValueError, r'Cannot decode image .*train/good/bad\.png'),
    ('mask_size', ValueError, r'Mask .*scratch/000_mask\.png is 10x10 \(WxH\) '
     r'but its image .*scratch/000\.png is 40x24'),
    ('no_mask', FileNotFoundError, r'No mask for defective image .*hole/000'
     r'\.png: expected .*ground_truth/hole/000_mask\.png'),
    ('no_defects', ValueError, r'needs normal images .* and defective ones'),
])
def test_folder_bad_input(tmp_path, case, error, match):
  root = str(tmp_path / 'cat')
  _tiny_folder(root)
  path = root
  if case == 'missing':
    path = str(tmp_path / 'nowhere')
  elif case == 'no_train_good':
    os.rename(os.path.join(root, 'train', 'good'),
              os.path.join(root, 'train', 'ok'))
  elif case == 'bad_image':
    with open(os.path.join(root, 'train', 'good', 'bad.png'), 'wb') as f:
      f.write(b'not a png at all')
  elif case == 'mask_size':
    _mask(os.path.join(root, 'ground_truth', 'scratch', '000_mask.png'),
          (10, 10))
  elif case == 'no_mask':
    os.remove(os.path.join(root, 'ground_truth', 'hole', '000_mask.png'))
  elif case == 'no_defects':
    for kind in ('scratch', 'hole'):
      for name in os.listdir(os.path.join(root, 'test', kind)):
        os.remove(os.path.join(root, 'test', kind, name))
  with pytest.raises(error, match=match):
    data.load(_config(source='folder', protocol='folder', path=path,
                      val_fraction=0.2), seed=0)


def test_folder_real_magnetic_tile():
  if not os.path.isdir(TILE_DIR):
    pytest.skip(f'magnetic_tile not present at {TILE_DIR}')
  with pytest.raises(ValueError, match=r'Defective image .*uneven/exp3_num_'
                     r'45042\.jpg has an empty mask .* \(and 3 more'):
    data.load(_config(source='folder', protocol='folder', path=TILE_DIR,
                      image_size=32), seed=0)
  s = data.load(_config(source='folder', protocol='folder', path=TILE_DIR,
                        image_size=32, empty_masks='keep'), seed=0)
  _check_splits(s, (32, 32, 1))
  assert s.info['sizes']['train_good'] == 762
  assert len(s.train.y) + len(s.val.y) == 762
  assert len(s.val.y) == _round(0.1, 762)
  assert s.info['test_kinds'] == {'blowhole': 115, 'break': 85, 'crack': 57,
                                  'fray': 32, 'good': 190, 'uneven': 103}
  assert (s.test.y == 0).sum() == 190 and (s.test.y == 1).sum() == 392
  assert set(np.unique(s.test.masks)) == {0.0, 1.0}
  assert not s.test.masks[s.test.y == 0].any()
  empty = int((~s.test.masks[s.test.y == 1].any(axis=(1, 2))).sum())
  # 4 'uneven' masks are empty in the dataset itself (kept with
  # empty_masks='keep'), and NEAREST at 32x32 drops 29 thin defects.
  assert empty == 33
  assert ('29 defect masks lose all their pixels when resized to 32x32 '
          '(nearest)') in s.info['notes']
  assert any(n.startswith('4 defect masks empty in the files themselves')
             for n in s.info['notes'])


# ---------------------------------------------------------------- tabular ---


def _write_csv(path, rows, header):
  with open(path, 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(header)
    writer.writerows(rows)


def _tabular_rows(n=60):
  rng = np.random.default_rng(0)
  rows = []
  for i in range(n):
    attack = i % 5 == 0
    rows.append([
        f'{(100.0 if attack else rng.uniform(0, 10)):.4f}',  # numeric
        'tcp' if i % 2 else ('icmp' if attack else 'udp'),   # text category
        str(i % 3),                                          # coded category
        'attack' if attack else 'normal',                    # label
    ])
  return rows


def test_tabular_csv_train_only_fit(tmp_path):
  path = str(tmp_path / 't.csv')
  _write_csv(path, _tabular_rows(), ['bytes', 'proto', 'code', 'label'])
  config = _config(source='tabular', path=path, class_name='attack',
                   categorical_columns=('code',))
  s = data.load(config, seed=0)
  _check_splits(s)
  assert s.info['source_info']['numeric_columns'] == ['bytes']
  assert s.info['source_info']['categorical_columns'] == ['proto', 'code']
  # bytes + proto {tcp, udp} (icmp only in attacks, unseen) + code {0, 1, 2}.
  assert s.info['feature_names'] == [
      'bytes', 'proto_tcp', 'proto_udp', 'code_0', 'code_1', 'code_2']
  assert s.train.x.shape == (len(s.train.y), 6)
  assert s.info['class_counts'] == {'attack': 12, 'normal': 48}
  assert set(s.test.kinds[s.test.y == 1]) == {'attack'}
  bytes_train = s.train.x[:, 0]
  assert bytes_train.min() == pytest.approx(-1) and bytes_train.max() == (
      pytest.approx(1))
  # Fitted on train only: attacks (100 >> 10) land far outside [-1, 1].
  assert (s.test.x[s.test.y == 1, 0] > 1.5).all()
  # icmp (attacks with even i) never occurs in train: all-zero proto block.
  proto = s.test.x[s.test.y == 1][:, 1:3].sum(axis=1)
  assert (proto == 0).sum() == 6 and (proto == 1).sum() == 6
  np.testing.assert_array_equal(s.train.x[:, 3:].sum(axis=1), 1)


def test_tabular_numeric_labels_sorted_numerically(tmp_path):
  path = str(tmp_path / 't.csv')
  rows = [[str(i * 0.5), str([2, 10, 1][i % 3])] for i in range(60)]
  _write_csv(path, rows, ['f', 'label'])
  s = data.load(_config(source='tabular', path=path, class_index=2,
                        protocol='normal_class'), seed=0)
  assert s.info['class_name'] == '10'  # Classes 1, 2, 10.
  assert set(s.train.kinds) == {'10'}


@pytest.mark.parametrize('layout', ['xy', 'columns'])
def test_tabular_npz(tmp_path, layout):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(50, 3))
  y = np.arange(50) % 2
  path = str(tmp_path / 't.npz')
  if layout == 'xy':
    np.savez(path, x=x, y=y.astype(np.float64))
    config = _config(source='tabular', path=path, class_index=1)
  else:
    np.savez(path, a=x[:, 0], b=x[:, 1], color=np.where(y, 'red', 'blue'),
             target=y)
    config = _config(source='tabular', path=path, class_index=1,
                     label_column='target')
  s = data.load(config, seed=0)
  _check_splits(s)
  assert s.info['class_counts'] == {'0': 25, '1': 25}
  assert set(s.test.kinds[s.test.y == 1]) == {'1'}
  width = 3 if layout == 'xy' else 2 + 1  # color is 'blue' only in train.
  assert s.train.x.shape[1] == width


@pytest.mark.parametrize('case,match', [
    ('no_label', r"Label column 'label' not in .*columns present: "
     r"\['a', 'b', 'kind'\]"),
    ('nan', r"NaN / Inf / empty values in numeric columns .*'a' \(2\), "
     r"'b' \(1\)"),
    ('class_range', r"class_index 5 out of range: tabular file .* has classes "
     r"0..1 \(\['x', 'y'\]\)"),
    ('class_name', r"class_name 'z' not found"),
    ('categorical', r"categorical_columns \['nope'\] not among"),
    ('extension', r'must end in \.csv or \.npz'),
])
def test_tabular_bad_input(tmp_path, case, match):
  path = str(tmp_path / ('t.txt' if case == 'extension' else 't.csv'))
  rows = [[str(i), str(i * 2), 'x' if i % 2 else 'y'] for i in range(40)]
  header = ['a', 'b', 'kind']
  overrides = {'label_column': 'kind'}
  if case == 'no_label':
    overrides = {}
  elif case == 'nan':
    rows[3][0], rows[4][0], rows[5][1] = 'nan', '', 'inf'
  elif case == 'class_range':
    overrides['class_index'] = 5
  elif case == 'class_name':
    overrides['class_name'] = 'z'
  elif case == 'categorical':
    overrides['categorical_columns'] = ('nope',)
  _write_csv(path, rows, header)
  with pytest.raises(ValueError, match=match):
    data.load(_config(source='tabular', path=path, **overrides), seed=0)


# ------------------------------------------------------------ bad configs ---


@pytest.mark.parametrize('overrides,error,match', [
    ({'source': 'cifar'}, ValueError,
     r"Unknown data source 'cifar'; valid sources: \('digits', 'tfds', "
     r"'idx', 'folder', 'tabular', 'sklearn_tabular'\)"),
    ({'protocol': 'one_class'}, ValueError,
     r"Unknown protocol 'one_class'; valid protocols: \('anomaly_class', "
     r"'normal_class', 'folder'\)"),
    ({'protocol': 'folder'}, ValueError, r"'folder' is the only protocol"),
    ({'source': 'folder', 'path': '/tmp'}, ValueError,
     r"'folder' is the only protocol"),
    ({'image_size': 24}, ValueError, r'power of two >= 16.*got 24'),
    ({'image_size': 8}, ValueError, r'power of two >= 16.*got 8'),
    ({'image_size': 0}, ValueError, r'power of two >= 16.*got 0'),
    ({'channels': 2}, ValueError, r'channels must be 1 or 3; got 2'),
    ({'test_fraction': 1.0}, ValueError, r'test_fraction must lie'),
    ({'val_fraction': 0.0}, ValueError, r'val_fraction must lie'),
    ({'class_index': 11}, ValueError,
     r'^class_index 11 out of range: digits has classes 0\.\.9\.$'),
    ({'class_index': -1}, ValueError, r'class_index -1 out of range'),
    ({'class_name': 'ten'}, ValueError, r"class_name 'ten' not found"),
    ({'protocol': 'normal_class', 'max_per_class': 5}, ValueError,
     r'validation split would be empty: val_fraction 0.1 of 4 training'),
    ({'source': 'idx'}, ValueError, r"Source 'idx' needs config.path"),
    ({'source': 'tabular', 'path': '/no/such/file.csv'}, FileNotFoundError,
     r'/no/such/file\.csv'),
])
def test_bad_config(overrides, error, match):
  config = _config(image_size=16)
  config.update(overrides)
  with pytest.raises(error, match=match):
    data.load(config, seed=0)


def test_bad_seed():
  with pytest.raises(ValueError, match='seed must be a non-negative int'):
    data.load(_config(), seed=-1)
