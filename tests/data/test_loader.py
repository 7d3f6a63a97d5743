"""Tests of `data.loader.load`: determinism, class choice, capping, refused configs."""

import numpy as np
import pytest

from ganad_jax import data
from ganad_jax.data import protocols
import helpers


def test_determinism_and_seed_dependence():
  config = helpers.data_config(image_size=16)
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
  s = data.load(helpers.data_config(image_size=16, class_index=0, class_name='7'), seed=0)
  assert s.info['class_index'] == 7
  assert set(s.test.kinds[s.test.y == 1]) == {'7'}


def test_max_per_class_caps_and_is_seeded():
  config = helpers.data_config(image_size=16, max_per_class=50)
  s = data.load(config, seed=0)
  assert s.info['sizes']['kept'] == 500
  kinds = np.concatenate([s.train.kinds, s.val.kinds, s.test.kinds])
  assert all(n == 50 for n in np.unique(kinds, return_counts=True)[1])
  keep_a = protocols.cap_per_class(np.repeat(np.arange(3), 10), 4, seed=0)
  keep_b = protocols.cap_per_class(np.repeat(np.arange(3), 10), 4, seed=1)
  assert len(keep_a) == 12 and not np.array_equal(keep_a, keep_b)


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
  config = helpers.data_config(image_size=16)
  config.update(overrides)
  with pytest.raises(error, match=match):
    data.load(config, seed=0)


def test_bad_seed():
  with pytest.raises(ValueError, match='seed must be a non-negative int'):
    data.load(helpers.data_config(), seed=-1)


def test_float_scale_is_validated():
  with pytest.raises(ValueError, match=r'float_scale must be a positive'):
    data.load(helpers.data_config(float_scale=0.0), seed=0)
  with pytest.raises(ValueError, match=r"empty_masks must be one of"):
    data.load(helpers.data_config(empty_masks='drop'), seed=0)
