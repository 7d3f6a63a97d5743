"""Tests of `data.protocols`: the train / val / test partition of each protocol."""

from hypothesis import strategies as st
import hypothesis
import numpy as np
import pytest

from ganad_jax.data import protocols
import helpers


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
  assert (ind.test_y == 0).sum() == helpers.round_half(0.2, n_normal)
  assert len(ind.val) == helpers.round_half(0.1, n_normal - helpers.round_half(0.2, n_normal))
  again = fn(labels, 0, 0.2, 0.1, seed)
  np.testing.assert_array_equal(again.test, ind.test)


def test_protocol_val_split_empty_is_refused():
  labels = np.repeat(np.arange(2), [5, 30])
  with pytest.raises(ValueError, match='validation split would be empty'):
    protocols.normal_class(labels, 0, 0.2, 0.1, seed=0)
