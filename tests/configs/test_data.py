"""Tests of `configs.data`: the defaults of the `data` section."""

from ganad_jax import configs


def test_default_config_fields():
  assert configs.data.data_config().to_dict() == {
      'source': 'digits', 'protocol': 'anomaly_class', 'class_index': 0,
      'class_name': '', 'image_size': 32, 'channels': 1, 'path': '',
      'tfds_name': 'mnist', 'data_dir': '', 'tfds_splits': ('train', 'test'),
      'test_fraction': 0.2, 'val_fraction': 0.1, 'max_per_class': 0,
      'label_column': 'label', 'categorical_columns': (), 'sklearn_name': 'breast_cancer',
      'float_scale': 1.0, 'empty_masks': 'error',
  }
