"""Tests of `data.images`: one decoding rule per image mode, by declared bit depth."""

import numpy as np
from PIL import Image
import pytest

from ganad_jax.data import folder
from ganad_jax.data import images
import helpers


# Decoded images are rounded to 8 bits: |error| <= half a step of 1/255 in
# [0, 1], i.e. <= 1/255 in [-1, 1].
ATOL = 1.0 / 255.0 + 1e-6


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
    ('P', 'png', lambda: helpers.palette_mask().crop((14, 0, 17, 1)), 3, 1.0,
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


def test_resize_to_height_and_width():
  image = np.arange(6 * 10, dtype=np.uint8).reshape(6, 10, 1)
  resized = images.resize_uint8([image], (3, 5))
  expected = np.asarray(Image.fromarray(image[..., 0]).resize((5, 3),
                                                             Image.Resampling.BILINEAR))
  np.testing.assert_array_equal(resized[0, ..., 0], expected)
  np.testing.assert_array_equal(images.resize_uint8([image], 8),
                                images.resize_uint8([image], (8, 8)))
  assert images.size_note({(6, 10)}, (3, 5), 'x') == 'x 6x10 resized to 3x5 (bilinear)'
