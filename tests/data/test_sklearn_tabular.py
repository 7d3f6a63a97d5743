"""Tests of `data.sklearn_tabular`: bundled scikit-learn sets through the tabular path."""

import numpy as np
import pytest
from sklearn import datasets

from ganad_jax import configs
from ganad_jax import data


def _data_config(**overrides):
  config = configs.base_config().data
  config.source = "sklearn_tabular"
  config.update(overrides)
  return config


def test_breast_cancer_malignant_is_the_anomaly():
  splits = data.load(_data_config(class_name="malignant"), seed=0)
  bunch = datasets.load_breast_cancer()
  assert splits.info["class_counts"] == {"malignant": 212, "benign": 357}
  assert splits.info["n_features"] == 30
  assert splits.info["feature_names"] == [str(n) for n in bunch.feature_names]
  # 357 benign: 71 to test, 286 left, 29 of them to val.
  assert (len(splits.train), len(splits.val)) == (257, 29)
  assert int((splits.test.y == 1).sum()) == 212 and int((splits.test.y == 0).sum()) == 71
  assert set(splits.test.kinds[splits.test.y == 1]) == {"malignant"}
  assert set(splits.train.kinds) == {"benign"}
  # Scaled on the training rows only: exactly [-1, 1] there, val / test may leave it.
  np.testing.assert_allclose(splits.train.x.min(axis=0), -1.0, atol=1e-6)
  np.testing.assert_allclose(splits.train.x.max(axis=0), 1.0, atol=1e-6)
  assert splits.test.x.max() > 1.0
  assert splits.train.x.dtype == np.float32


def test_normal_class_protocol_on_iris():
  splits = data.load(_data_config(sklearn_name="iris", class_index=0,
                                  protocol="normal_class"), seed=1)
  assert splits.info["normal_classes"] == ["setosa"]
  assert splits.info["anomaly_classes"] == ["versicolor", "virginica"]
  assert len(splits.train) + len(splits.val) + int((splits.test.y == 0).sum()) == 50
  assert int((splits.test.y == 1).sum()) == 100
  assert set(splits.test.kinds[splits.test.y == 1]) == {"versicolor", "virginica"}
  assert splits.train.x.shape[1] == 4


def test_unknown_name_is_listed():
  with pytest.raises(ValueError, match=r"Unknown sklearn_name 'diabetes'.*'breast_cancer'"):
    data.load(_data_config(sklearn_name="diabetes"), seed=0)
