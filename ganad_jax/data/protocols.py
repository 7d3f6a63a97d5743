"""Evaluation protocols: which examples go to train, val and test.

They decide which examples are anomalies, work on class ids only and return
indices into the pool.

- `anomaly_class` (GANomaly, Akcay et al. 2018): class `class_id` is the
  ANOMALY; every other class is normal. The normals are pooled, shuffled and
  split (1 - test_fraction) / test_fraction into train / test; test also gets
  every image of the anomalous class.
- `normal_class` (one-vs-rest, the ALAD / Deep SVDD convention): class
  `class_id` is NORMAL; every other class is an anomaly. The normal class is
  split the same way; test also gets every image of the other classes.
- `holdout` (used by the `folder` protocol and by both protocols above): a
  val_fraction of the training normals becomes the validation set.

Counts round half up: n_test = floor(test_fraction * n_normal + 0.5) and
n_val = floor(val_fraction * (n_normal - n_test) + 0.5). Every random draw
uses `rng(seed, purpose)`, one generator per purpose, so changing one purpose
(e.g. the per-class cap) leaves the others' draws alone.
"""

import dataclasses
import zlib

import numpy as np


@dataclasses.dataclass(frozen=True)
class Indices:
  """Indices into the pool for each role, and the test anomaly labels.

  Attributes:
    train: normal examples for training.
    val: normal examples held out from train.
    test: normal and anomalous examples, in a seeded random order.
    test_y: int32 (len(test),), 1 = anomaly, 0 = normal.
  """
  train: np.ndarray
  val: np.ndarray
  test: np.ndarray
  test_y: np.ndarray


def rng(seed: int, purpose: str) -> np.random.Generator:
  """Returns the generator for one purpose ('split', 'cap', ...) and seed."""
  return np.random.default_rng([seed, zlib.crc32(purpose.encode())])


def count(fraction: float, n: int) -> int:
  """Returns round-half-up(fraction * n)."""
  return int(np.floor(fraction * n + 0.5))


def cap_per_class(labels: np.ndarray, max_per_class: int,
                  seed: int) -> np.ndarray:
  """Keeps at most `max_per_class` examples of each class, drawn at random.

  Args:
    labels: class ids (N,).
    max_per_class: the cap; 0 keeps everything.
    seed: the split seed (purpose 'cap').

  Returns:
    Sorted indices of the kept examples.
  """
  labels = np.asarray(labels)
  if max_per_class <= 0:
    return np.arange(len(labels))
  generator = rng(seed, 'cap')
  kept = []
  for label in np.unique(labels):
    members = np.flatnonzero(labels == label)
    if len(members) > max_per_class:
      members = generator.choice(members, max_per_class, replace=False)
    kept.append(members)
  return np.sort(np.concatenate(kept)) if kept else np.arange(0)


def holdout(n: int, val_fraction: float, seed: int,
            what: str = 'training normals') -> tuple[np.ndarray, np.ndarray]:
  """Splits range(n) into (train, val) with round-half-up(val_fraction * n) val.

  Args:
    n: number of training normals.
    val_fraction: fraction held out as validation.
    seed: the split seed (purpose 'val').
    what: what the n examples are, for error messages.

  Returns:
    (train indices, val indices), both in a seeded random order.

  Raises:
    ValueError: if val or train would be empty.
  """
  n_val = count(val_fraction, n)
  if n_val == 0:
    raise ValueError(
        f'The validation split would be empty: val_fraction {val_fraction} of '
        f'{n} {what} rounds to 0. Raise val_fraction or max_per_class, or '
        'use more data.')
  if n_val >= n:
    raise ValueError(
        f'The training split would be empty: val_fraction {val_fraction} of '
        f'{n} {what} leaves no training example.')
  order = rng(seed, 'val').permutation(n)
  return order[n_val:], order[:n_val]


def _split(normal: np.ndarray, anomalous: np.ndarray, test_fraction: float,
           val_fraction: float, seed: int, description: str) -> Indices:
  """Splits normals into train / val / test and appends anomalies to test."""
  if len(normal) == 0:
    raise ValueError(f'No normal examples: {description}.')
  if len(anomalous) == 0:
    raise ValueError(f'No anomalous examples: {description}.')
  split_rng = rng(seed, 'split')
  normal = split_rng.permutation(normal)
  n_test = count(test_fraction, len(normal))
  if n_test == 0 or n_test >= len(normal):
    raise ValueError(
        f'test_fraction {test_fraction} of {len(normal)} normal examples '
        f'gives {n_test} test normals; both train and test need some '
        f'({description}).')
  rest = normal[n_test:]
  train_pos, val_pos = holdout(len(rest), val_fraction, seed)
  test = np.concatenate([normal[:n_test], anomalous])
  test_y = np.concatenate([np.zeros(n_test, np.int32),
                           np.ones(len(anomalous), np.int32)])
  order = split_rng.permutation(len(test))
  return Indices(train=rest[train_pos], val=rest[val_pos], test=test[order],
                 test_y=test_y[order])


def anomaly_class(labels: np.ndarray, class_id: int, test_fraction: float,
                  val_fraction: float, seed: int) -> Indices:
  """GANomaly's protocol: `class_id` is the anomaly, all others are normal.

  Args:
    labels: class ids (N,) of the pool.
    class_id: the anomalous class.
    test_fraction: fraction of the pooled normals that goes to test.
    val_fraction: fraction of the remaining (training) normals held out.
    seed: the split seed.

  Returns:
    The indices of each role.
  """
  labels = np.asarray(labels)
  return _split(np.flatnonzero(labels != class_id),
                np.flatnonzero(labels == class_id), test_fraction,
                val_fraction, seed, f'anomaly_class with anomalous class '
                f'{class_id}')


def normal_class(labels: np.ndarray, class_id: int, test_fraction: float,
                 val_fraction: float, seed: int) -> Indices:
  """One-vs-rest: `class_id` is normal, all other classes are anomalies.

  Args:
    labels: class ids (N,) of the pool.
    class_id: the normal class.
    test_fraction: fraction of the normal class that goes to test.
    val_fraction: fraction of the remaining (training) normals held out.
    seed: the split seed.

  Returns:
    The indices of each role.
  """
  labels = np.asarray(labels)
  return _split(np.flatnonzero(labels == class_id),
                np.flatnonzero(labels != class_id), test_fraction,
                val_fraction, seed, f'normal_class with normal class '
                f'{class_id}')


PROTOCOLS = {'anomaly_class': anomaly_class, 'normal_class': normal_class}
