"""The `data` section of the config: its defaults and the checks run before any loading."""

import numbers
import os

import ml_collections

SOURCES = ('digits', 'tfds', 'idx', 'folder', 'tabular', 'sklearn_tabular')
PROTOCOLS = ('anomaly_class', 'normal_class', 'folder')
EMPTY_MASKS = ('error', 'keep')


def data_config() -> ml_collections.ConfigDict:
  """Returns the `data` section with every field at its default.

  Fields:
    source: 'digits' | 'tfds' | 'idx' | 'folder' | 'tabular' |
      'sklearn_tabular'.
    protocol: 'anomaly_class' (class `class_index` is the anomaly, all others
      normal: GANomaly's split) | 'normal_class' (class `class_index` is
      normal, all others anomalies: one-vs-rest, ALAD / Deep SVDD) | 'folder'
      (the only protocol of source 'folder').
    class_index: the anomalous (anomaly_class) or normal (normal_class) class.
    class_name: if non-empty, overrides `class_index` by matching a class name
      (tabular: the label value as a string; digits / idx: '0'..'9'; tfds:
      the ClassLabel name, e.g. 'cat').
    image_size: side of the square images; a power of two >= 16. With
      `image_width` > 0, their height.
    image_width: 0 = square images; else their width (source 'folder' only).
      Every image is resized to image_size x image_width (bilinear), whatever
      its own aspect, so that maps and masks keep every pixel. Non-square
      images need the patch protocol (`configs.patch`).
    channels: 1 or 3; grayscale <-> RGB conversion as needed.
    path: folder (idx, folder) or file (tabular) to read.
    tfds_name: tfds dataset name (source 'tfds').
    data_dir: tfds data_dir; '' means the tfds default.
    tfds_splits: tfds splits pooled before the protocol split.
    test_fraction: fraction of the normal pool that goes to test.
    val_fraction: fraction of the training normals held out as validation.
    max_per_class: cap on images (rows) per class after loading; 0 = no cap.
    label_column: label column of a tabular file.
    categorical_columns: tabular columns one-hot encoded even when numeric
      (non-numeric columns are always categorical).
    sklearn_name: the bundled scikit-learn set of source 'sklearn_tabular'
      ('breast_cancer', 'wine', 'iris').
    float_scale: the declared maximum of float (PIL mode 'F') image files of
      source 'folder': values in [0, float_scale] map to [0, 1]; a float
      file outside that range is refused. A float file does not declare its
      range, so the user does (1.0 or 255.0).
    empty_masks: 'error' (a defective image whose mask file has no defect
      pixel is refused, naming it) | 'keep' (keep such images with all-zero
      masks; each is named in info['notes']).
  """
  config = ml_collections.ConfigDict()
  config.source = 'digits'
  config.protocol = 'anomaly_class'
  config.class_index = 0
  config.class_name = ''
  config.image_size = 32
  config.image_width = 0
  config.channels = 1
  config.path = ''
  config.tfds_name = 'mnist'
  config.data_dir = ''
  config.tfds_splits = ('train', 'test')
  config.test_fraction = 0.2
  config.val_fraction = 0.1
  config.max_per_class = 0
  config.label_column = 'label'
  config.categorical_columns = ()
  config.sklearn_name = 'breast_cancer'
  config.float_scale = 1.0
  config.empty_masks = 'error'
  return config


def image_shape(config: ml_collections.ConfigDict) -> tuple[int, int]:
  """(height, width) of the images the loaders make: image_size x (image_width or image_size)."""
  return config.image_size, config.image_width or config.image_size


def validate(config: ml_collections.ConfigDict, seed: int) -> None:
  """Checks the config fields that need no data; raises on the first problem.

  Args:
    config: the `data` section.
    seed: the split seed.

  Raises:
    ValueError: naming the offending field, its value and what is allowed.
    FileNotFoundError: when `path` is needed and does not exist.
  """
  if config.source not in SOURCES:
    raise ValueError(
        f'Unknown data source {config.source!r}; valid sources: {SOURCES}.')
  if config.protocol not in PROTOCOLS:
    raise ValueError(
        f'Unknown protocol {config.protocol!r}; valid protocols: {PROTOCOLS}.')
  if (config.source == 'folder') != (config.protocol == 'folder'):
    raise ValueError(
        "Protocol 'folder' is the only protocol of source 'folder' and vice "
        f'versa; got source {config.source!r} with protocol '
        f'{config.protocol!r}. Use source=folder with protocol=folder, or '
        "another source with protocol 'anomaly_class' or 'normal_class'.")
  size = config.image_size
  if (not isinstance(size, numbers.Integral) or isinstance(size, bool) or
      size < 16 or size & (size - 1)):
    raise ValueError(
        f'image_size must be a power of two >= 16 (16, 32, 64, 128, 256, ...); '
        f'got {size!r}.')
  if config.image_width and config.source != 'folder':
    raise ValueError(
        f'image_width={config.image_width!r} is read by source \'folder\' '
        f'only; source {config.source!r} makes square images (set it to 0).')
  if config.channels not in (1, 3):
    raise ValueError(f'channels must be 1 or 3; got {config.channels!r}.')
  for name in ('test_fraction', 'val_fraction'):
    value = config[name]
    if not 0.0 < value < 1.0:
      raise ValueError(
          f'{name} must lie strictly between 0 and 1; got {value}.')
  if config.max_per_class < 0:
    raise ValueError(
        f'max_per_class must be >= 0 (0 = no cap); got {config.max_per_class}.')
  if (not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or
      seed < 0):
    raise ValueError(f'seed must be a non-negative int; got {seed!r}.')
  scale = config.float_scale
  if (not isinstance(scale, numbers.Real) or isinstance(scale, bool) or
      not 0.0 < scale < float('inf')):
    raise ValueError(
        f'float_scale must be a positive finite number (1.0 or 255.0); got '
        f'{scale!r}.')
  if config.empty_masks not in EMPTY_MASKS:
    raise ValueError(
        f'empty_masks must be one of {EMPTY_MASKS}; got '
        f'{config.empty_masks!r}.')
  if config.source in ('idx', 'folder', 'tabular'):
    if not config.path:
      kind = 'file' if config.source == 'tabular' else 'folder'
      raise ValueError(
          f'Source {config.source!r} needs config.path (a {kind}); it is '
          'empty.')
    if not os.path.exists(config.path):
      raise FileNotFoundError(
          f'Data path for source {config.source!r} not found: {config.path}')
