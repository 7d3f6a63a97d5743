"""Tabular data from CSV or NPZ, with a label column.

Files:
  - CSV: a header row of column names, then one row per example (read with
    the csv module). Values are stripped of surrounding blanks.
  - NPZ, layout 'xy': arrays 'x' (N, F) and 'y' (N,), optionally
    'feature_names' (F,) (default names 'x0', 'x1', ...). `label_column` is
    not used: 'y' is the label.
  - NPZ, layout 'columns' (any NPZ without 'x' and 'y'): one 1-D array of
    length N per column, named by its key; `label_column` names the label.

Columns: a column is numeric when its dtype is numeric or every non-empty
value parses as a float; otherwise, or when listed in `categorical_columns`,
it is categorical. Empty cells of numeric columns count as NaN, and NaN or
Inf anywhere in a numeric column is an error (impute first). Categorical
values are strings; an empty cell is a category of its own.

Encoding happens AFTER the protocol split and is fitted on the training rows
only: numeric columns are scaled by MinMaxScaler to [-1, 1] (the images'
range, which suits Tanh decoders; val / test values may fall outside it) and
categorical columns are one-hot encoded by OneHotEncoder(handle_unknown=
'ignore'), so categories unseen in train encode as all zeros. Features are
float32 (N, F): numeric columns first, then the one-hot blocks.

Classes are the sorted unique label values (numerically sorted when every
value is a number); `kinds` is the label value as a string.
"""

import csv
import dataclasses
import os

import ml_collections
import numpy as np
from sklearn import preprocessing

from ganad_jax.data import pool


@dataclasses.dataclass(frozen=True)
class Table:
  """Typed columns of a tabular file, before encoding.

  Attributes:
    numeric: name -> float64 (N,) column, in file order.
    categorical: name -> str (N,) column, in file order.
  """
  numeric: dict[str, np.ndarray]
  categorical: dict[str, np.ndarray]


def _as_float(values: np.ndarray) -> np.ndarray | None:
  """Parses strings as floats ('' -> NaN); None if any value is not a number."""
  out = np.empty(len(values), np.float64)
  for i, value in enumerate(values):
    if value == '':
      out[i] = np.nan
      continue
    try:
      out[i] = float(value)
    except ValueError:
      return None
  return out


def _value_strings(values: np.ndarray) -> np.ndarray:
  """Label or category values as strings ('3', not '3.0', for whole floats)."""
  values = np.asarray(values)
  if values.dtype.kind == 'f' and np.all(np.isfinite(values)) and np.all(
      values == np.round(values)):
    values = values.astype(np.int64)
  if values.dtype.kind in 'OSU':
    return np.asarray([str(v).strip() for v in values], dtype=str)
  return values.astype(str)


def _is_numeric_dtype(values: np.ndarray) -> bool:
  return values.dtype.kind in 'biuf'


def _read_csv(path: str) -> dict[str, np.ndarray]:
  """Reads a CSV file into name -> str column."""
  with open(path, newline='', encoding='utf-8') as f:
    rows = list(csv.reader(f))
  rows = [row for row in rows if row]  # Blank lines.
  if not rows:
    raise ValueError(f'CSV file {path} is empty.')
  header = [name.strip() for name in rows[0]]
  if len(set(header)) != len(header):
    raise ValueError(f'CSV file {path} has duplicate column names: {header}.')
  for line, row in enumerate(rows[1:], start=2):
    if len(row) != len(header):
      raise ValueError(
          f'CSV file {path}, row {line}: {len(row)} fields, header has '
          f'{len(header)}.')
  if len(rows) == 1:
    raise ValueError(f'CSV file {path} has a header but no rows.')
  body = np.asarray(rows[1:], dtype=str)
  return {name: np.char.strip(body[:, j]) for j, name in enumerate(header)}


def _read_npz(path: str, label_column: str
              ) -> tuple[dict[str, np.ndarray], str, str]:
  """Reads an NPZ file into (name -> column, label column name, layout)."""
  try:
    with np.load(path, allow_pickle=False) as data:
      arrays = {key: data[key] for key in data.files}
  except (OSError, ValueError) as e:
    raise ValueError(f'Cannot read NPZ file {path}: {e}') from e
  if 'x' in arrays and 'y' in arrays:
    x, y = arrays['x'], arrays['y']
    if x.ndim != 2 or y.ndim != 1 or len(x) != len(y):
      raise ValueError(
          f"NPZ file {path}: 'x' must be (N, F) and 'y' (N,); got {x.shape} "
          f'and {y.shape}.')
    names = [f'x{j}' for j in range(x.shape[1])]
    if 'feature_names' in arrays:
      names = [str(n) for n in arrays['feature_names']]
      if len(names) != x.shape[1] or 'y' in names:
        raise ValueError(
            f"NPZ file {path}: 'feature_names' needs {x.shape[1]} distinct "
            f"names other than 'y'; got {names}.")
    columns = {name: x[:, j] for j, name in enumerate(names)}
    columns['y'] = y
    return columns, 'y', 'xy'
  lengths = {key: a.shape for key, a in arrays.items()}
  if any(a.ndim != 1 for a in arrays.values()) or len(
      {len(a) for a in arrays.values()}) > 1:
    raise ValueError(
        f"NPZ file {path} has neither 'x' and 'y' nor 1-D columns of one "
        f'length; its arrays: {lengths}.')
  return arrays, label_column, 'columns'


def read(config: ml_collections.ConfigDict) -> tuple[pool.Pool, Table]:
  """Reads a tabular file and types its columns.

  Args:
    config: the `data` sub-config (path, label_column, categorical_columns).

  Returns:
    (the pool: labels and class names, x None; the typed feature columns).

  Raises:
    FileNotFoundError: when the file is missing.
    ValueError: an unknown file type, a missing label column (listing the
      columns present), unknown categorical columns, NaN / Inf in numeric
      columns (naming them with counts), or empty labels.
  """
  path = config.path
  if not os.path.isfile(path):
    raise FileNotFoundError(f'Tabular file not found: {path}')
  extension = os.path.splitext(path)[1].lower()
  if extension == '.csv':
    columns, label_column, layout = _read_csv(path), config.label_column, 'csv'
  elif extension == '.npz':
    columns, label_column, layout = _read_npz(path, config.label_column)
  else:
    raise ValueError(
        f'Tabular file {path} must end in .csv or .npz; got {extension!r}.')
  if label_column not in columns:
    raise ValueError(
        f'Label column {label_column!r} not in {path}; columns present: '
        f'{list(columns)}.')
  features = [name for name in columns if name != label_column]
  forced = list(config.categorical_columns)
  unknown = [name for name in forced if name not in features]
  if unknown:
    raise ValueError(
        f'categorical_columns {unknown} not among the feature columns of '
        f'{path}: {features}.')
  if not features:
    raise ValueError(f'{path} has no feature column besides the label.')

  numeric, categorical = {}, {}
  for name in features:
    values = columns[name]
    parsed = None
    if name not in forced:
      if _is_numeric_dtype(values):
        parsed = values.astype(np.float64)
      else:
        parsed = _as_float(np.asarray([str(v).strip() for v in values]))
    if parsed is None:
      categorical[name] = _value_strings(values)
    else:
      numeric[name] = parsed
  bad = {name: int((~np.isfinite(v)).sum()) for name, v in numeric.items()}
  bad = {name: n for name, n in bad.items() if n}
  if bad:
    listed = ', '.join(f'{name!r} ({n})' for name, n in bad.items())
    raise ValueError(
        f'NaN / Inf / empty values in numeric columns of {path}: {listed}. '
        'Impute or drop them first.')

  label_values = _value_strings(columns[label_column])
  empty = int((label_values == '').sum())
  if empty or np.any(np.isin(label_values, ['nan', 'inf', '-inf'])):
    raise ValueError(
        f'Label column {label_column!r} of {path} has missing or NaN values '
        f'({empty} empty).')
  names = np.unique(label_values)
  as_numbers = _as_float(names)
  if as_numbers is not None:
    names = names[np.argsort(as_numbers, kind='stable')]
  index = {name: i for i, name in enumerate(names)}
  labels = [index[value] for value in label_values]
  notes = [
      f'tabular {layout} file {os.path.basename(path)}: {len(label_values)} '
      f'rows, {len(numeric)} numeric and {len(categorical)} categorical '
      'feature columns',
      'numeric columns MinMax-scaled to [-1, 1] and categorical columns '
      'one-hot encoded, both fitted on the training split only',
  ]
  source_pool = pool.Pool(
      x=None, labels=np.asarray(labels, np.int64),
      class_names=tuple(str(n) for n in names),
      name=f'tabular file {path} (label column {label_column!r})',
      notes=tuple(notes),
      info={'label_column': label_column, 'layout': layout,
            'numeric_columns': list(numeric),
            'categorical_columns': list(categorical)})
  return source_pool, Table(numeric=numeric, categorical=categorical)


def numeric_scaler() -> preprocessing.MinMaxScaler:
  """The (unfitted) scaler of numeric columns: MinMax to [-1, 1], the images' range."""
  return preprocessing.MinMaxScaler(feature_range=(-1.0, 1.0))


def encode(table: Table, train: np.ndarray, others: list[np.ndarray]
           ) -> tuple[np.ndarray, list[np.ndarray], list[str]]:
  """Fits the scaler and one-hot encoder on `train` rows; encodes all rows.

  Args:
    table: the typed columns.
    train: row indices of the training split (the only rows fitted on).
    others: row indices of the other splits (val, test).

  Returns:
    (train features, [features of each of `others`], feature names); all
    float32 (rows, F).
  """
  parts_train, parts_other, names = [], [[] for _ in others], []
  if table.numeric:
    numeric = np.stack(list(table.numeric.values()), axis=1)
    scaler = numeric_scaler()
    parts_train.append(scaler.fit_transform(numeric[train]))
    for part, rows in zip(parts_other, others):
      part.append(scaler.transform(numeric[rows]))
    names += list(table.numeric)
  if table.categorical:
    categorical = np.stack(list(table.categorical.values()), axis=1)
    encoder = preprocessing.OneHotEncoder(
        handle_unknown='ignore', sparse_output=False, dtype=np.float32)
    parts_train.append(encoder.fit_transform(categorical[train]))
    for part, rows in zip(parts_other, others):
      part.append(encoder.transform(categorical[rows]))
    names += [str(n) for n in encoder.get_feature_names_out(
        list(table.categorical))]
  def stack(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts, axis=1).astype(np.float32)

  return stack(parts_train), [stack(p) for p in parts_other], names
