"""Tests of `configs.data`: the defaults of the `data` section and `image_shape`."""

import pytest

from ganad_jax import configs


def test_default_config_fields():
  assert configs.data.data_config().to_dict() == {
      'source': 'digits', 'protocol': 'anomaly_class', 'class_index': 0,
      'class_name': '', 'image_size': 32, 'image_width': 0, 'channels': 1, 'path': '',
      'tfds_name': 'mnist', 'data_dir': '', 'tfds_splits': ('train', 'test'),
      'test_fraction': 0.2, 'val_fraction': 0.1, 'max_per_class': 0,
      'label_column': 'label', 'categorical_columns': (), 'sklearn_name': 'breast_cancer',
      'float_scale': 1.0, 'empty_masks': 'error',
  }


def test_image_width_is_for_folders_only():
  config = configs.data.data_config()
  config.image_width = 48
  with pytest.raises(ValueError, match="image_width=48 is read by source 'folder' only; source "
                                       "'digits' makes square images"):
    configs.data.validate(config, seed=0)
  assert configs.data.image_shape(config) == (32, 48)
  config.image_width = 0
  assert configs.data.image_shape(config) == (32, 32)
