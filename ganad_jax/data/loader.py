"""`load`: config + seed -> Splits, for every source and protocol."""

from typing import Any

from absl import logging
import ml_collections
import numpy as np

from ganad_jax.configs import data as data_config
from ganad_jax.data import digits
from ganad_jax.data import folder
from ganad_jax.data import idx
from ganad_jax.data import images
from ganad_jax.data import pool
from ganad_jax.data import protocols
from ganad_jax.data import sklearn_tabular
from ganad_jax.data import splits
from ganad_jax.data import tabular
from ganad_jax.data import tfds_source

_POOLED_SOURCES = {
    'digits': digits.load,
    'tfds': tfds_source.load,
    'idx': idx.load,
}


def _resolve_class(config: ml_collections.ConfigDict,
                   source_pool: pool.Pool) -> int:
  """Returns the class id named by class_name, or else by class_index."""
  names = list(source_pool.class_names)
  if config.class_name:
    if config.class_name not in names:
      raise ValueError(
          f'class_name {config.class_name!r} not found: {source_pool.name} '
          f'has classes {names}.')
    return names.index(config.class_name)
  index = config.class_index
  if not 0 <= index < len(names):
    named = '' if names == [str(i) for i in range(len(names))] else (
        f' ({names})')
    raise ValueError(
        f'class_index {index} out of range: {source_pool.name} has classes '
        f'0..{len(names) - 1}{named}.')
  return int(index)


def _protocol_note(config: ml_collections.ConfigDict, class_name: str) -> str:
  test = f'{config.test_fraction:g}'
  val = f'{config.val_fraction:g}'
  if config.protocol == 'anomaly_class':
    return (f"anomaly_class protocol (GANomaly): class '{class_name}' is the "
            f'anomaly; the other classes are pooled normals, split '
            f'{1 - config.test_fraction:g}/{test} into train/test; test also '
            f"holds every '{class_name}' example; val = {val} of the "
            'training normals')
  return (f"normal_class protocol (one-vs-rest): class '{class_name}' is "
          f'normal, all others are anomalies; the normal class is split '
          f'{1 - config.test_fraction:g}/{test} into train/test; test also '
          f'holds every other-class example; val = {val} of the training '
          'normals')


def _sizes(train: splits.Split, val: splits.Split,
           test: splits.Split) -> dict[str, int]:
  return {
      'train': len(train.y), 'val': len(val.y), 'test': len(test.y),
      'test_normal': int((test.y == 0).sum()),
      'test_anomalous': int((test.y == 1).sum()),
  }


def _load_pooled(config: ml_collections.ConfigDict, seed: int) -> splits.Splits:
  """Loads a pooled source (digits, tfds, idx, tabular) and splits it."""
  table = None
  if config.source == 'tabular':
    source_pool, table = tabular.read(config)
  elif config.source == 'sklearn_tabular':
    source_pool, table = sklearn_tabular.read(config)
  else:
    source_pool = _POOLED_SOURCES[config.source](config)
  names = np.asarray(source_pool.class_names, dtype=str)
  class_id = _resolve_class(config, source_pool)
  keep = protocols.cap_per_class(source_pool.labels, config.max_per_class,
                                 seed)
  labels = source_pool.labels[keep]
  counts = np.bincount(labels, minlength=len(names))
  if counts[class_id] == 0:
    raise ValueError(
        f"Class {class_id} ('{names[class_id]}') of {source_pool.name} has 0 "
        f'examples{" after capping" if config.max_per_class else ""}; class '
        f'counts: {dict(zip(names.tolist(), counts.tolist()))}.')
  indices = protocols.PROTOCOLS[config.protocol](
      labels, class_id, config.test_fraction, config.val_fraction, seed)
  rows = {'train': keep[indices.train], 'val': keep[indices.val],
          'test': keep[indices.test]}
  if table is not None:
    x_train, (x_val, x_test), feature_names = tabular.encode(
        table, rows['train'], [rows['val'], rows['test']])
    xs = {'train': x_train, 'val': x_val, 'test': x_test}
  else:
    xs = {role: source_pool.x[r] for role, r in rows.items()}
  ys = {'train': np.zeros(len(rows['train']), np.int32),
        'val': np.zeros(len(rows['val']), np.int32),
        'test': indices.test_y.astype(np.int32)}
  made = {
      role: splits.Split(x=xs[role], y=ys[role],
                         kinds=names[source_pool.labels[r]])
      for role, r in rows.items()
  }
  if config.protocol == 'anomaly_class':
    anomaly_classes = [names[class_id]]
  else:
    anomaly_classes = [n for i, n in enumerate(names) if i != class_id]
  info: dict[str, Any] = {
      'source': config.source,
      'dataset': source_pool.name,
      'protocol': config.protocol,
      'seed': seed,
      'class_index': class_id,
      'class_name': str(names[class_id]),
      'normal_classes': [str(n) for n in names if n not in anomaly_classes],
      'anomaly_classes': [str(n) for n in anomaly_classes],
      'class_counts': dict(zip(names.tolist(), counts.tolist())),
      'test_fraction': config.test_fraction,
      'val_fraction': config.val_fraction,
      'max_per_class': config.max_per_class,
      'sizes': {'pool': len(source_pool.labels), 'kept': len(keep),
                **_sizes(made['train'], made['val'], made['test'])},
      'notes': [_protocol_note(config, str(names[class_id])),
                *source_pool.notes],
      'source_info': source_pool.info,
  }
  if config.max_per_class:
    info['notes'].append(
        f'at most {config.max_per_class} examples per class (seeded)')
  if table is not None:
    info['feature_names'] = feature_names
    info['n_features'] = len(feature_names)
  else:
    info['image_size'] = config.image_size
    info['channels'] = config.channels
  return splits.Splits(train=made['train'], val=made['val'],
                       test=made['test'], info=info)


def _load_folder(config: ml_collections.ConfigDict, seed: int) -> splits.Splits:
  """Loads an MVTec-style category folder (protocol 'folder')."""
  category = folder.load(config, seed)
  train_pos, val_pos = protocols.holdout(
      len(category.train_x), config.val_fraction, seed,
      what='images in train/good')
  order = protocols.rng(seed, 'split').permutation(len(category.test_y))
  has_masks = category.test_masks is not None

  def normals(positions: np.ndarray) -> splits.Split:
    x = images.uint8_to_unit(category.train_x[positions])
    masks = np.zeros(x.shape[:3], np.float32) if has_masks else None
    return splits.Split(x=x, y=np.zeros(len(x), np.int32),
                        kinds=np.full(len(x), folder.NORMAL), masks=masks)

  train, val = normals(train_pos), normals(val_pos)
  test = splits.Split(
      x=images.uint8_to_unit(category.test_x[order]),
      y=category.test_y[order], kinds=category.test_kinds[order],
      masks=category.test_masks[order].astype(np.float32)
      if has_masks else None)
  kinds, counts = np.unique(category.test_kinds, return_counts=True)
  info = {
      'source': 'folder',
      'dataset': f'category folder {config.path}',
      'protocol': 'folder',
      'seed': seed,
      'path': config.path,
      'image_size': config.image_size,
      'channels': config.channels,
      'val_fraction': config.val_fraction,
      'max_per_class': config.max_per_class,
      'has_masks': has_masks,
      'test_kinds': dict(zip(kinds.tolist(), counts.tolist())),
      'empty_kinds': category.empty_kinds,
      'sizes': {'train_good': len(category.train_x),
                **_sizes(train, val, test)},
      'notes': [
          f'folder protocol: train = train/good minus a held-out '
          f'{config.val_fraction:g} as val; test = test/* (good normal, '
          'other folders anomalous)',
          *category.notes,
      ],
      'files': {
          'train': [category.train_files[i] for i in train_pos],
          'val': [category.train_files[i] for i in val_pos],
          'test': [category.test_files[i] for i in order],
      },
  }
  return splits.Splits(train=train, val=val, test=test, info=info)


def _refuse_degenerate_train(result: splits.Splits) -> None:
  """Raises ValueError if the training examples are all identical, or all blank images.

  Either leaves nothing for a method to model (a covariance of 0, a
  reconstruction of one picture) and is a data error far more often than an
  intent. Some blank or repeated images among others pass.
  """
  x, info = result.train.x, result.info
  if len(x) < 2:
    return
  rows = 'images' if x.ndim == 4 else 'rows'
  what = (f"the {len(x)} training {rows} of {info['dataset']}"
          + (f" (normal class {info['class_name']!r})" if 'class_name' in info else ''))
  files = info.get('files', {}).get('train')
  named = f" ({', '.join(files[:3])}{', ...' if len(files) > 3 else ''})" if files else ''
  flat = x.reshape(len(x), -1)
  if np.all(flat == flat[:1]):
    raise ValueError(f'All {what}{named} are identical: there is nothing to model. '
                     'Check the data (or data.class_index / class_name).')
  if rows == 'images' and np.all(flat == flat[:, :1]):
    raise ValueError(f'Every one of {what}{named} is blank (one value in all its pixels): '
                     'check how the files were written or decoded.')


def load(config: ml_collections.ConfigDict, seed: int) -> splits.Splits:
  """Loads the data a config names and splits it by its protocol.

  Args:
    config: the `data` section (see `configs.data.data_config`).
    seed: split seed; same config and seed give identical arrays.

  Returns:
    train (normals), val (normals held out from train) and test (normals and
    anomalies) with a JSON-serialisable info dict.

  Raises:
    ValueError, FileNotFoundError: on any bad config or input, naming it;
      ValueError for a training split whose examples are all identical or
      all blank images.
  """
  data_config.validate(config, seed)
  if config.source == 'folder':
    result = _load_folder(config, seed)
  else:
    result = _load_pooled(config, seed)
  _refuse_degenerate_train(result)
  logging.info('Loaded %s (%s, seed %d): %s.', result.info['dataset'],
               config.protocol, seed, result.info['sizes'])
  return result
