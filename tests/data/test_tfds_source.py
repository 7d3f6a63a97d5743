"""Tests of `data.tfds_source`: tensorflow-datasets sets under `tfds.testing.mock_data`."""

import pytest
import tensorflow_datasets as tfds

from ganad_jax import data
from ganad_jax.data import tfds_source
import helpers


@pytest.mark.parametrize('protocol', ['anomaly_class', 'normal_class'])
def test_tfds_mock_end_to_end(protocol):
  # mock_data patches tfds.data_source without TensorFlow; USE_CODE takes
  # the features from the mnist builder code, not from metadata files.
  config = helpers.data_config(source='tfds', tfds_name='mnist', image_size=16,
                               protocol=protocol, class_name='1', channels=3)
  with tfds.testing.mock_data(num_examples=60,
                              policy=tfds.testing.MockPolicy.USE_CODE):
    s = data.load(config, seed=0)
  helpers.check_splits(s, (16, 16, 3))
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
