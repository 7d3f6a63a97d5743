"""Tests of `data.digits`: scikit-learn's 8x8 digits, sizes per protocol, values, resizing."""

import numpy as np
from PIL import Image
import pytest
from sklearn import datasets

from ganad_jax import data
import helpers

DIGIT_COUNTS = np.array([178, 182, 177, 183, 181, 182, 181, 179, 174, 180])


@pytest.mark.parametrize('size', [16, 32, 64])
@pytest.mark.parametrize('protocol', ['anomaly_class', 'normal_class'])
def test_digits_shapes_and_protocol_sizes(size, protocol):
  cls = 3
  s = data.load(helpers.data_config(image_size=size, protocol=protocol, class_index=cls),
                seed=0)
  helpers.check_splits(s, (size, size, 1))
  n_cls, n_rest = DIGIT_COUNTS[cls], DIGIT_COUNTS.sum() - DIGIT_COUNTS[cls]
  if protocol == 'anomaly_class':
    n_normal, n_anomalous = n_rest, n_cls
  else:
    n_normal, n_anomalous = n_cls, n_rest
  n_test_normal = helpers.round_half(0.2, n_normal)
  n_val = helpers.round_half(0.1, n_normal - n_test_normal)
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
  s = data.load(helpers.data_config(image_size=16, channels=3), seed=0)
  helpers.check_splits(s, (16, 16, 3))
  np.testing.assert_array_equal(s.train.x[..., 0], s.train.x[..., 2])
  assert s.train.x.min() == -1.0 and s.train.x.max() > 0.9


def test_digits_resize_matches_pil_bilinear():
  # Each 16x16 image is PIL's bilinear upsampling of a scaled 8x8 digit.
  s = data.load(helpers.data_config(image_size=16, class_index=0,
                                    protocol='normal_class'), seed=0)
  raw = datasets.load_digits().images.astype(np.float32) / 8 - 1
  expected = np.stack([np.asarray(Image.fromarray(im).resize(
      (16, 16), Image.Resampling.BILINEAR)) for im in raw])
  # Every loaded image is one of the expected ones.
  flat = expected.reshape(len(expected), -1)
  for image in s.test.x[:20, ..., 0]:
    assert np.isclose(flat, image.reshape(1, -1), atol=1e-6).all(axis=1).any()
