"""Image inputs that must not be misread or leak (issue 15, faults 3, 4, 7).

Fault 3: mask pixels are defects when non-zero in any channel; an empty mask
of a defective image is an error. Fault 4: one decoding rule per image mode,
by declared bit depth. Fault 7: the same sample never enters the pool twice.
"""

import gzip
import os
import shutil
import struct

import numpy as np
from PIL import Image
import pytest

from ganad_jax import configs
from ganad_jax import data
from ganad_jax.data import folder
from ganad_jax.data import idx
from ganad_jax.data import images

# Decoded images are rounded to 8 bits: |error| <= half a step of 1/255 in
# [0, 1], i.e. <= 1/255 in [-1, 1].
ATOL = 1.0 / 255.0 + 1e-6


def _config(**overrides):
  config = configs.data.data_config()
  for key, value in overrides.items():
    config[key] = value
  return config


def _category(root, n_train=3, side=32):
  """train/good (3), test/good (1), test/scratch (1) with a mask; distinct."""
  for sub in ('train/good', 'test/good', 'test/scratch',
              'ground_truth/scratch'):
    os.makedirs(os.path.join(root, sub))
  value = iter(range(10, 250, 20))
  paths = [f'train/good/{i:03d}.png' for i in range(n_train)] + [
      'test/good/000.png', 'test/scratch/000.png']
  for path in paths:
    array = np.full((side, side), next(value), np.uint8)
    array[: side // 2] = 255 - array[0, 0]
    Image.fromarray(array).save(os.path.join(root, path))
  mask = np.zeros((side, side), np.uint8)
  mask[:, : side // 2] = 255
  Image.fromarray(mask).save(
      os.path.join(root, 'ground_truth/scratch/000_mask.png'))
  return root


def _load(root, **overrides):
  return data.load(_config(source='folder', protocol='folder', path=root,
                           image_size=16, val_fraction=0.34, **overrides),
                   seed=0)


# ------------------------------------------------------ fault 3: masks ---


def _left_half(dtype=np.uint8, value=255, side=32):
  array = np.zeros((side, side), dtype)
  array[:, : side // 2] = value
  return array


def _red_on_black(side=32):
  array = np.zeros((side, side, 3), np.uint8)
  array[:, : side // 2, 0] = 200
  return Image.fromarray(array)


def _palette(side=32):
  mask = Image.fromarray(_left_half(value=1), 'L').convert('P')
  mask.putpalette([0, 0, 0, 0, 128, 0] + [0] * 762)
  return mask


@pytest.mark.parametrize('case,make', [
    ('label_1', lambda: Image.fromarray(_left_half(value=1))),
    ('label_2', lambda: Image.fromarray(_left_half(value=2))),
    ('grey_100', lambda: Image.fromarray(_left_half(value=100))),
    ('sixteen_bit_0_1', lambda: Image.fromarray(_left_half(np.uint16, 1))),
    ('red_on_black_rgb', _red_on_black),
    ('palette_green', _palette),
    ('one_bit', lambda: Image.fromarray(_left_half(value=1) > 0)),
    ('binary_255', lambda: Image.fromarray(_left_half())),
])
def test_mask_nonzero_pixels_are_defects(tmp_path, case, make):
  root = _category(str(tmp_path / 'cat'))
  make().save(os.path.join(root, 'ground_truth/scratch/000_mask.png'))
  s = _load(root)
  mask = s.test.masks[s.test.y == 1][0]
  assert mask[:, :8].all() and not mask[:, 8:].any(), case


def test_mask_empty_in_file_is_an_error_naming_the_image(tmp_path):
  root = _category(str(tmp_path / 'cat'))
  Image.fromarray(_left_half(value=0)).save(
      os.path.join(root, 'ground_truth/scratch/000_mask.png'))
  with pytest.raises(folder.EmptyMaskError,
                     match=r'Defective image .*test/scratch/000\.png has an '
                     r'empty mask .*ground_truth/scratch/000_mask\.png'):
    _load(root)
  s = _load(root, empty_masks='keep')
  assert not s.test.masks.any()
  assert any('1 defect masks empty in the files themselves, kept all zero: '
             'ground_truth/scratch/000_mask.png' in n for n in s.info['notes'])


def test_mask_vanishing_on_downsizing_is_a_note(tmp_path):
  root = _category(str(tmp_path / 'cat'))
  mask = np.zeros((32, 32), np.uint8)
  mask[2, 2] = 255  # NEAREST at 16x16 samples odd pixels only.
  Image.fromarray(mask).save(
      os.path.join(root, 'ground_truth/scratch/000_mask.png'))
  s = _load(root)
  assert not s.test.masks.any()
  assert ('1 defect masks lose all their pixels when resized to 16x16 '
          '(nearest)') in s.info['notes']


# ---------------------------------------------------- fault 4: decoding ---


def _cmyk():
  return Image.new('CMYK', (3, 1), (10, 20, 30, 40))


def _cmyk_rgb():  # PIL: R = (255 - C) * (255 - K) / 255.
  return np.array([245, 235, 225]) * 215 / 255 / 255


def _tiff_array(array):
  return lambda: Image.fromarray(array)


def _pgm16(path):
  with open(path, 'wb') as f:
    f.write(b'P5 3 1 65535\n' + np.array([0, 1000, 65535], '>u2').tobytes())


# (name, suffix, writer or PIL image factory, channels, float_scale,
#  expected values in [0, 1] of the first row).
_MODES = [
    ('L', 'png', lambda: Image.fromarray(np.array([[0, 100, 255]], np.uint8)),
     1, 1.0, [0, 100 / 255, 1]),
    ('RGB', 'png', lambda: Image.fromarray(
        np.array([[[10, 200, 255]] * 3], np.uint8)), 3, 1.0,
     [[10 / 255, 200 / 255, 1]] * 3),
    ('I;16', 'png', lambda: Image.fromarray(
        np.array([[0, 300, 65535]], np.uint16)), 1, 1.0,
     [0, 300 / 65535, 1]),
    ('I;16_small_max', 'png', lambda: Image.fromarray(
        np.array([[0, 100, 200]], np.uint16)), 1, 1.0,
     [0, 100 / 65535, 200 / 65535]),
    ('I_signed_32_tiff', 'tif', _tiff_array(
        np.array([[0, 2**30, 2**31 - 1]], np.int32)), 1, 1.0,
     [0, 2**30 / (2**31 - 1), 1]),
    ('I_32_tiff_small_values', 'tif', _tiff_array(
        np.array([[0, 100, 255]], np.int32)), 1, 1.0,
     [0, 100 / (2**31 - 1), 255 / (2**31 - 1)]),
    ('I_pgm_16', 'pgm', _pgm16, 1, 1.0, [0, 1000 / 65535, 1]),
    ('F_unit', 'tif', _tiff_array(np.array([[0, 0.25, 1]], np.float32)), 1,
     1.0, [0, 0.25, 1]),
    ('F_255', 'tif', _tiff_array(np.array([[0, 63.75, 255]], np.float32)),
     1, 255.0, [0, 0.25, 1]),
    ('P', 'png', lambda: _palette().crop((14, 0, 17, 1)), 3, 1.0,
     [[0, 128 / 255, 0], [0, 128 / 255, 0], [0, 0, 0]]),
    ('LA', 'png', lambda: Image.fromarray(
        np.array([[[0, 255], [128, 0], [255, 7]]], np.uint8), 'LA'), 1, 1.0,
     [0, 128 / 255, 1]),
    ('RGBA', 'png', lambda: Image.fromarray(
        np.array([[[10, 20, 30, 0], [40, 50, 60, 128], [255, 0, 255, 255]]],
                 np.uint8), 'RGBA'), 3, 1.0,
     np.array([[10, 20, 30], [40, 50, 60], [255, 0, 255]]) / 255),
    ('CMYK', 'tif', _cmyk, 3, 1.0, [_cmyk_rgb()] * 3),
    ('1', 'png', lambda: Image.fromarray(np.array([[False, True, True]])), 1,
     1.0, [0, 1, 1]),
]


@pytest.mark.parametrize('name,suffix,make,channels,float_scale,expected',
                         _MODES, ids=[m[0] for m in _MODES])
def test_decode_each_mode_by_declared_depth(tmp_path, name, suffix, make,
                                            channels, float_scale, expected):
  path = str(tmp_path / f'x.{suffix}')
  if suffix == 'pgm':
    make(path)
  else:
    make().save(path)
  decoded = folder.read_image(path, 3, channels, float_scale)
  assert decoded.original == (3, 1)
  with Image.open(path) as image:
    unit = images.pil_to_uint8(image, channels, path, float_scale)
  got = images.uint8_to_unit(unit[None])[0, 0]  # First row, (3, channels).
  want = np.asarray(expected, np.float64).reshape(3, channels) * 2 - 1
  np.testing.assert_allclose(got, want, rtol=0, atol=ATOL, err_msg=name)


@pytest.mark.parametrize('values,float_scale,match', [
    ([-3.0, 0.5, 7.0], 1.0, r'x\.tif \(mode F\) has values in \[-3, 7\], '
     r'outside the rule for its type: \[0, 1\] \(data\.float_scale\)\.'),
    ([0.0, 63.75, 255.0], 1.0, r'values in \[0, 255\].*set '
     r'data\.float_scale=255'),
    ([0.0, np.nan, 1.0], 1.0, r'values in \[nan, nan\]'),
])
def test_decode_refuses_values_that_fit_no_rule(tmp_path, values, float_scale,
                                                match):
  path = str(tmp_path / 'x.tif')
  Image.fromarray(np.array([values], np.float32)).save(path)
  with pytest.raises(images.ImageDecodeError, match=match):
    folder.read_image(path, 16, 1, float_scale)


def test_decode_refuses_negative_signed_integers(tmp_path):
  path = str(tmp_path / 'x.tif')
  Image.fromarray(np.array([[-5, 0, 9]], np.int32)).save(path)
  with pytest.raises(images.ImageDecodeError,
                     match=r'x\.tif \(mode I\) has values in \[-5, 9\], '
                     r'outside .*signed 32-bit'):
    folder.read_image(path, 16, 1)


def test_float_scale_is_validated():
  with pytest.raises(ValueError, match=r'float_scale must be a positive'):
    data.load(_config(float_scale=0.0), seed=0)
  with pytest.raises(ValueError, match=r"empty_masks must be one of"):
    data.load(_config(empty_masks='drop'), seed=0)


# -------------------------------------------------- fault 7: duplicates ---


def test_same_stem_two_formats_is_refused(tmp_path):
  root = _category(str(tmp_path / 'cat'))
  with Image.open(os.path.join(root, 'train/good/001.png')) as image:
    image.save(os.path.join(root, 'train/good/001.jpg'))
  with pytest.raises(folder.DuplicateImageError,
                     match=r'Images .*train/good/001\.jpg and .*train/good/'
                     r'001\.png share a name stem'):
    _load(root)


@pytest.mark.parametrize('source,copy', [
    ('train/good/000.png', 'test/good/zz.png'),   # Byte copy, other name.
    ('train/good/001.png', 'test/scratch/zz.bmp'),  # Same pixels, BMP.
])
def test_identical_pixels_under_two_names_are_refused(tmp_path, source,
                                                      copy):
  root = _category(str(tmp_path / 'cat'))
  with Image.open(os.path.join(root, source)) as image:
    image.save(os.path.join(root, copy))
  if copy.startswith('test/scratch'):
    Image.fromarray(_left_half()).save(
        os.path.join(root, 'ground_truth/scratch/zz_mask.png'))
  with pytest.raises(folder.DuplicateImageError,
                     match=f'Images {source} and {copy} hold identical pixels'
                     r' \(32x32 WxH'):
    _load(root)


def test_drafted_jpeg_duplicate_is_confirmed_at_native_resolution(tmp_path):
  root = _category(str(tmp_path / 'cat'))
  rng = np.random.default_rng(0)
  photo = Image.fromarray(rng.integers(0, 256, (128, 128), np.uint8))
  photo.save(os.path.join(root, 'train/good/photo.jpg'), quality=90)
  shutil.copy(os.path.join(root, 'train/good/photo.jpg'),
              os.path.join(root, 'test/good/photo_copy.jpg'))
  decoded = folder.read_image(os.path.join(root, 'train/good/photo.jpg'), 16,
                              1)
  assert decoded.drafted  # 128x128 decoded at 1/4 or 1/8 scale.
  with pytest.raises(folder.DuplicateImageError,
                     match=r'train/good/photo\.jpg and test/good/photo_copy'):
    _load(root)


def test_draft_digest_collision_is_not_a_duplicate(tmp_path):
  rng = np.random.default_rng(1)
  paths = []
  for name in ('a.jpg', 'b.jpg'):
    paths.append(str(tmp_path / name))
    Image.fromarray(rng.integers(0, 256, (64, 64), np.uint8)).save(paths[-1])
  same = folder.Decoded(image=np.zeros((16, 16, 1), np.uint8),
                        original=(64, 64), digest='x', drafted=True)
  folder.check_duplicates(paths, [same, same], 1, 1.0)  # Differ natively.


def test_distinct_images_load_with_a_note(tmp_path):
  s = _load(_category(str(tmp_path / 'cat')))
  assert ('5 images checked for duplicates (same stem in a folder; '
          'identical decoded pixels): none') in s.info['notes']


def _write_idx(folder_path, prefix, x, gz):
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
  _write_idx(str(tmp_path), 't10k', _idx_images(), gz=True)
  _write_idx(str(tmp_path), 't10k', _idx_images(), gz=False)
  with pytest.raises(idx.DuplicateSampleError,
                     match=r'IDX images .*t10k-images-idx3-ubyte and .*'
                     r't10k-images-idx3-ubyte\.gz are one file in two forms'):
    data.load(_config(source='idx', path=str(tmp_path), image_size=16),
              seed=0)


def test_idx_same_content_under_two_prefixes_is_refused(tmp_path):
  _write_idx(str(tmp_path), 't10k', _idx_images(), gz=True)
  _write_idx(str(tmp_path), 'train', _idx_images(), gz=False)
  with pytest.raises(idx.DuplicateSampleError,
                     match=r'IDX images files t10k-images-idx3-ubyte\.gz and '
                     r'train-images-idx3-ubyte hold identical images'):
    data.load(_config(source='idx', path=str(tmp_path), image_size=16),
              seed=0)


def test_idx_repeated_single_image_is_a_note(tmp_path):
  x = _idx_images()
  x[5] = x[2]
  _write_idx(str(tmp_path), 'train', x, gz=False)
  s = data.load(_config(source='idx', path=str(tmp_path), image_size=16,
                        val_fraction=0.5), seed=0)
  assert ("1 IDX images repeat an earlier image's pixels (first: image 5 of "
          'train-images-idx3-ubyte = image 2 of train-images-idx3-ubyte)'
          ) in s.info['notes']
