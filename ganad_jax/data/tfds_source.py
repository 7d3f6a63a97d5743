"""Any tensorflow-datasets image set, read without TensorFlow.

`tfds.data_source` gives random access to datasets prepared in the
ArrayRecord format and decodes images with PIL (or OpenCV), so TensorFlow is
not needed to READ. Preparing (downloading and converting) most datasets does
need TensorFlow: prepare them once where it is installed, with
`file_format='array_record'`, and point `data_dir` at the result.
"""

from collections.abc import Sequence
from typing import Any

from absl import logging
import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from ganad_jax.data import images
from ganad_jax.data import pool

_BATCH = 1024


def _read_batches(source: Sequence[Any]) -> list[dict[str, Any]]:
  """Reads every example, `_BATCH` keys at a time when the source allows it.

  tfds data sources implement `__getitems__` (one batched read per call);
  some sequences do not (a plain list, or the `tfds.testing.mock_data` mock,
  whose `__getitems__` is not bound as a method in tfds 4.9.10 and raises
  TypeError), and those are read one example at a time.

  Args:
    source: a tfds data source (or any sequence of example dicts).

  Returns:
    The examples, in order.
  """
  n = len(source)
  getitems = getattr(source, '__getitems__', None)
  if getitems is not None and n:
    try:
      first = getitems(list(range(min(_BATCH, n))))
    except (TypeError, NotImplementedError, AttributeError) as e:
      logging.info('Batched reads unavailable (%s); reading one by one.', e)
    else:
      examples = list(first)
      for start in range(_BATCH, n, _BATCH):
        examples.extend(getitems(list(range(start, min(start + _BATCH, n)))))
      return examples
  return [source[i] for i in range(n)]


def load(config: ml_collections.ConfigDict) -> pool.Pool:
  """Loads and pools config.tfds_splits of config.tfds_name.

  Args:
    config: the `data` sub-config (tfds_name, data_dir, tfds_splits,
      image_size, channels). Examples need keys 'image' (uint8 (H, W, C)) and
      'label' (int).

  Returns:
    The pooled images; class names come from the 'label' ClassLabel feature
    when it has names, else they are the label numbers.

  Raises:
    ValueError: when an example lacks 'image' or 'label', or an image is not
      (H, W, 1) or (H, W, 3).
  """
  splits = list(config.tfds_splits)
  if not splits:
    raise ValueError('config.tfds_splits is empty; name at least one split.')
  sources = tfds.data_source(
      config.tfds_name, split=splits, data_dir=config.data_dir or None)
  raw, labels, sizes, counts = [], [], set(), {}
  for split, source in zip(splits, sources):
    examples = _read_batches(source)
    counts[split] = len(examples)
    for example in examples:
      if 'image' not in example or 'label' not in example:
        raise ValueError(
            f"tfds dataset {config.tfds_name!r} split {split!r}: examples "
            f"need keys 'image' and 'label'; got {sorted(example)}.")
      image = np.asarray(example['image'])
      if image.ndim == 2:
        image = image[..., None]
      if image.ndim != 3 or image.shape[-1] not in (1, 3):
        raise ValueError(
            f'tfds dataset {config.tfds_name!r} split {split!r}: images must '
            f'be (H, W, 1) or (H, W, 3); got {image.shape}.')
      raw.append(image.astype(np.uint8, copy=False))
      labels.append(int(example['label']))
      sizes.add(image.shape[:2])
    logging.info('Read %d examples of %s[%s].', len(examples),
                 config.tfds_name, split)
  labels = np.asarray(labels, np.int64)
  have_channels = {image.shape[-1] for image in raw}
  x = images.prepare_uint8(raw, config.image_size, config.channels)
  names = None
  info = getattr(sources[0], 'dataset_info', None)
  if info is not None and 'label' in info.features:
    names = getattr(info.features['label'], 'names', None)
  if not names:
    n_classes = int(labels.max()) + 1 if len(labels) else 0
    names = [str(i) for i in range(n_classes)]
  notes = [
      images.size_note(sizes, config.image_size,
                       f'tfds {config.tfds_name} images'),
      f'pooled tfds splits {splits} of {config.tfds_name}',
  ]
  if have_channels != {config.channels}:
    notes.append(f'tfds images with {sorted(have_channels)} channel(s) '
                 f'converted to {config.channels} channel(s)')
  return pool.Pool(
      x=x, labels=labels, class_names=tuple(str(n) for n in names),
      name=f'tfds dataset {config.tfds_name!r}', notes=tuple(notes),
      info={'tfds_name': config.tfds_name, 'tfds_splits': splits,
            'split_sizes': counts})
