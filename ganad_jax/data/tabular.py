"""Tabular data from CSV or NPZ, with a label column.

Files:
  - CSV: a header row of column names, then one row per example (read with
    the csv module). Values are stripped of surrounding blanks.
  - NPZ, layout 'xy': arrays 'x' (N, F) and 'y' (N,), optionally
    'feature_names' (F,) (default names 'x0', 'x1', ...). `label_column` is
    not used: 'y' is the label.
  - NPZ, layout 'columns' (any NPZ without 'x' and 'y'): one 1-D array of
    length N per column, named by its key; `label_column` names the label.

Missing values: after stripping, a cell equal (case-insensitively) to one
of MISSING_TOKENS ('', '?', 'NA', 'N/A', 'NaN', 'null', 'None', '-') is
missing. Missing cells never decide a column's type.

Columns: a column is numeric when its dtype is numeric or every non-missing
value parses as a float. It is categorical when it is listed in
`categorical_columns` or when none of its non-missing values is a number. A
column whose non-missing values are partly numbers and partly text (a stray
'12a' among measurements) is refused, naming its row and value: list it in
`categorical_columns` or fix the value. Missing cells, NaN or Inf anywhere in
a numeric column are an error naming column, row and token (impute first).
In a categorical column, missing tokens are kept as categories of their own
spelling and reported. Which columns are categorical and why is in the pool's
info ('categorical_reasons': column -> reason) and notes, so in results.json.
A file whose feature columns are ALL constant is refused (no row differs).

Value spellings (labels and categorical values alike; `_group_spellings`):
when every non-missing value of the column parses as a finite number, values
are grouped BY NUMBER: '1', '1.0' and '01' are one class, named by the
shortest integer or float spelling ('1', '0.5'); the merged spellings are
reported in the notes. Otherwise values are text, compared exactly after
stripping; two values that are one number in two spellings ('1' and '01')
or differ only in case ('Attack' and 'attack') are refused, naming both
spellings, since grouping them or not would be a guess. Labels may not be
missing (any MISSING_TOKENS spelling) or non-finite, and may not mix numbers
and text ('1' and 'one': is 'one' class 1?).

Rows in error messages are file lines for CSV (the header is line 1) and
0-based indices for NPZ.

Encoding happens AFTER the protocol split and is fitted on the training rows
only: numeric columns are scaled by MinMaxScaler to [-1, 1] (the images'
range, which suits Tanh decoders; val / test values may fall outside it) and
categorical columns are one-hot encoded by OneHotEncoder(handle_unknown=
'ignore'), so categories unseen in train encode as all zeros. Features are
float32 (N, F): numeric columns first, then the one-hot blocks.

Classes are the sorted unique label values (numerically sorted when every
value is a number, see above); `kinds` is the class name.
"""

import csv
import dataclasses
import os

import ml_collections
import numpy as np
from sklearn import preprocessing

from ganad_jax.data import pool


# Cells that mean "no value", compared case-insensitively after stripping.
MISSING_TOKENS = ('', '?', 'na', 'n/a', 'nan', 'null', 'none', '-')
_MISSING = frozenset(MISSING_TOKENS)
_EXAMPLES = 3  # Values quoted in reasons and errors.


@dataclasses.dataclass(frozen=True)
class Table:
  """Typed columns of a tabular file, before encoding.

  Attributes:
    numeric: name -> float64 (N,) column, in file order.
    categorical: name -> str (N,) column, in file order.
  """
  numeric: dict[str, np.ndarray]
  categorical: dict[str, np.ndarray]


def is_missing(value: str) -> bool:
  """Whether a cell is one of MISSING_TOKENS (case-insensitive, stripped)."""
  return value.strip().lower() in _MISSING


def _number(value: str) -> float | None:
  """`value` as a float, or None when it is not a number ('1_0' is not)."""
  if '_' in value:
    return None
  try:
    return float(value)
  except ValueError:
    return None


def _number_name(value: float) -> str:
  """The spelling of a number as a class / category: '1' for 1.0, '0.5'."""
  if value == np.round(value) and abs(value) < 2**53:
    return str(int(value))
  return repr(float(value))


def _strings(values: np.ndarray) -> np.ndarray:
  """A column as stripped strings; numbers of a numeric dtype spelled as by `_number_name`."""
  values = np.asarray(values)
  if values.dtype.kind in 'iuf':
    return np.asarray([_number_name(v) if np.isfinite(v) else str(v)
                       for v in values.astype(np.float64)], dtype=str)
  return np.asarray([str(v).strip() for v in values], dtype=str)


def _quote(values) -> str:
  return ', '.join(repr(str(v)) for v in values)


def _group_spellings(values: np.ndarray, what: str, where
                     ) -> tuple[np.ndarray, dict[str, list[str]]]:
  """Names the values of a label or categorical column (module docstring rule).

  Args:
    values: stripped strings; missing tokens are kept as they are.
    what: the column, for messages ("label column 'y' of f.csv").
    where: row index -> its place in the file, for messages.

  Returns:
    (value names, name -> the spellings merged into it, for names of more
    than one spelling).

  Raises:
    ValueError: text values of which two are one number in two spellings,
      or differ only in case.
  """
  present = [i for i, v in enumerate(values) if not is_missing(v)]
  numbers = {i: _number(values[i]) for i in present}
  if present and all(n is not None and np.isfinite(n) for n in numbers.values()):
    names = values.astype(object)  # New names may be longer than the widest spelling.
    merged = {}
    for i in present:
      names[i] = _number_name(numbers[i])
      merged.setdefault(str(names[i]), set()).add(str(values[i]))
    names = np.asarray(names.tolist(), dtype=str)
    return names, {k: sorted(v) for k, v in merged.items() if len(v) > 1}
  by_number, by_case = {}, {}
  for i in present:
    value = str(values[i])
    if numbers[i] is not None and np.isfinite(numbers[i]):
      by_number.setdefault(numbers[i], {}).setdefault(value, i)
    by_case.setdefault(value.lower(), {}).setdefault(value, i)
  for kind, groups in (('one number', by_number), ('one word in two cases', by_case)):
    for spellings in groups.values():
      if len(spellings) > 1:
        (a, i), (b, j) = sorted(spellings.items(), key=lambda kv: kv[1])[:2]
        raise ValueError(
            f'{what} spells {kind} as {a!r} ({where(i)}) and {b!r} ({where(j)}) '
            'among text values, so it cannot tell whether they are one value; '
            'use one spelling.')
  return values, {}


def _column_type(name: str, values: np.ndarray, forced: bool, what: str, where
                 ) -> tuple[np.ndarray | None, str]:
  """Types one column of strings: (float64 column, '') or (None, why categorical).

  Raises:
    ValueError: a column mixing numbers and text, naming a row of each.
  """
  missing = np.asarray([is_missing(v) for v in values], bool)
  tokens = sorted({str(v) for v in values[missing]})
  kept = (f'; missing-value tokens {_quote(tokens)} ({int(missing.sum())} '
          'rows) kept as categories' if tokens else '')
  if forced:
    return None, f'listed in data.categorical_columns{kept}'
  out = np.full(len(values), np.nan)
  text = []
  for i in np.flatnonzero(~missing):
    number = _number(values[i])
    if number is None:
      text.append(i)
    else:
      out[i] = number
  if not text:
    return out, ''
  text_rows = set(text)
  numbers = [i for i in np.flatnonzero(~missing) if i not in text_rows]
  if numbers:
    raise ValueError(
        f'Column {name!r} of {what} mixes numbers and text: '
        f'{str(values[text[0]])!r} at {where(text[0])}, '
        f'{str(values[numbers[0]])!r} at {where(numbers[0])} '
        f'({len(text)} text, {len(numbers)} number cells); fix the value, '
        'mark it missing, or list the column in data.categorical_columns.')
  examples = list(dict.fromkeys(str(values[i]) for i in text))[:_EXAMPLES]
  return None, f'non-numeric values such as {_quote(examples)}{kept}'


def _read_csv(path: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
  """Reads a CSV file into (name -> str column, file line of each row)."""
  with open(path, newline='', encoding='utf-8') as f:
    reader = csv.reader(f)
    rows, lines = [], []
    for row in reader:
      if row:  # Blank lines.
        rows.append(row)
        lines.append(reader.line_num)
  if not rows:
    raise ValueError(f'CSV file {path} is empty.')
  header = [name.strip() for name in rows[0]]
  if len(set(header)) != len(header):
    raise ValueError(f'CSV file {path} has duplicate column names: {header}.')
  for line, row in zip(lines[1:], rows[1:]):
    if len(row) != len(header):
      raise ValueError(
          f'CSV file {path}, line {line}: {len(row)} fields, header has '
          f'{len(header)}.')
  if len(rows) == 1:
    raise ValueError(f'CSV file {path} has a header but no rows.')
  body = np.asarray(rows[1:], dtype=str)
  columns = {name: np.char.strip(body[:, j]) for j, name in enumerate(header)}
  return columns, np.asarray(lines[1:])


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


def _refuse_all_constant(path: str, numeric: dict[str, np.ndarray],
                         categorical: dict[str, np.ndarray]) -> None:
  """Raises ValueError if every feature column holds one value (a few may: MinMax gives -1)."""
  values = {name: v[0] for name, v in numeric.items() if np.all(v == v[0])}
  values.update({name: v[0] for name, v in categorical.items() if np.all(v == v[0])})
  if len(values) < len(numeric) + len(categorical):
    return
  shown = ', '.join(f'{name!r} = {str(v)!r}' for name, v in list(values.items())[:_EXAMPLES])
  more = f' and {len(values) - _EXAMPLES} more' if len(values) > _EXAMPLES else ''
  raise ValueError(
      f'Every feature column of {path} is constant ({shown}{more}): every row has the '
      'same features, so no method can tell normal from anomalous rows.')


def read(config: ml_collections.ConfigDict) -> tuple[pool.Pool, Table]:
  """Reads a tabular file and types its columns (rules: module docstring).

  Args:
    config: the `data` sub-config (path, label_column, categorical_columns).

  Returns:
    (the pool: labels and class names, x None, info with 'numeric_columns',
    'categorical_columns' and 'categorical_reasons'; the typed feature
    columns).

  Raises:
    FileNotFoundError: when the file is missing.
    ValueError: an unknown file type, a missing label column (listing the
      columns present), unknown categorical columns, a column mixing numbers
      and text, missing / NaN / Inf values in numeric columns (naming them
      with counts and the first row and token of each), missing or non-finite
      labels, or a label / category spelled two ways (naming the spellings).
  """
  path = config.path
  if not os.path.isfile(path):
    raise FileNotFoundError(f'Tabular file not found: {path}')
  extension = os.path.splitext(path)[1].lower()
  if extension == '.csv':
    columns, lines = _read_csv(path)
    label_column, layout = config.label_column, 'csv'
    where = lambda i: f'line {lines[i]}'
  elif extension == '.npz':
    columns, label_column, layout = _read_npz(path, config.label_column)
    where = lambda i: f'row {i}'
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

  numeric, categorical, reasons, spellings = {}, {}, {}, {}
  for name in features:
    values = columns[name]
    if name not in forced and values.dtype.kind in 'biuf':
      numeric[name] = values.astype(np.float64)
      continue
    strings = _strings(values)
    parsed, reason = _column_type(name, strings, name in forced, path, where)
    if parsed is not None:
      numeric[name] = parsed
      continue
    categorical[name], merged = _group_spellings(
        strings, f'Column {name!r} of {path}', where)
    reasons[name] = reason
    if merged:
      spellings[name] = merged
  bad = {}
  for name, v in numeric.items():
    rows = np.flatnonzero(~np.isfinite(v))
    if len(rows):
      cell = columns[name][rows[0]]
      token = str(cell).strip() if isinstance(cell, str) else str(cell)
      bad[name] = (len(rows), f'{where(rows[0])} {token!r}')
  if bad:
    counts = ', '.join(f'{name!r} ({n})' for name, (n, _) in bad.items())
    firsts = '; '.join(f'first in {name!r}: {at}' for name, (_, at) in bad.items())
    raise ValueError(
        f'NaN / Inf / empty values in numeric columns of {path}: {counts}; '
        f'{firsts}. Missing-value tokens {_quote(MISSING_TOKENS)} (any case) '
        'count as missing; impute or drop them first.')

  _refuse_all_constant(path, numeric, categorical)

  label_values = _strings(columns[label_column])
  what = f'Label column {label_column!r} of {path}'
  first = {}  # 'number' / 'text' -> its first row.
  for i, value in enumerate(label_values):
    value = str(value)
    number = _number(value)
    if is_missing(value) or (number is not None and not np.isfinite(number)):
      raise ValueError(
          f'{what} has a missing or non-finite label {value!r} at {where(i)} '
          f'(missing-value tokens: {_quote(MISSING_TOKENS)}, any case).')
    first.setdefault('text' if number is None else 'number', i)
  if len(first) == 2:
    i, j = first['number'], first['text']
    raise ValueError(
        f'{what} mixes numbers and text: {str(label_values[i])!r} at '
        f'{where(i)}, {str(label_values[j])!r} at {where(j)}; it cannot tell '
        'whether the text names one of the numbers, so use one kind of label.')
  label_values, merged_labels = _group_spellings(label_values, what, where)
  names = np.unique(label_values)
  as_numbers = [_number(n) for n in names]
  if all(n is not None for n in as_numbers):
    names = names[np.argsort(as_numbers, kind='stable')]
  index = {name: i for i, name in enumerate(names)}
  labels = [index[value] for value in label_values]
  notes = [
      f'tabular {layout} file {os.path.basename(path)}: {len(label_values)} '
      f'rows, {len(numeric)} numeric and {len(categorical)} categorical '
      'feature columns',
      'numeric columns MinMax-scaled to [-1, 1] and categorical columns '
      'one-hot encoded, both fitted on the training split only',
      *[f'column {name!r} is categorical: {why}' for name, why in reasons.items()],
  ]
  if merged_labels:
    notes.append('label values grouped by number: ' + '; '.join(
        f'{_quote(s)} are class {k!r}' for k, s in merged_labels.items()))
  for name, merged in spellings.items():
    notes.append(f'column {name!r} values grouped by number: ' + '; '.join(
        f'{_quote(s)} are {k!r}' for k, s in merged.items()))
  source_pool = pool.Pool(
      x=None, labels=np.asarray(labels, np.int64),
      class_names=tuple(str(n) for n in names),
      name=f'tabular file {path} (label column {label_column!r})',
      notes=tuple(notes),
      info={'label_column': label_column, 'layout': layout,
            'numeric_columns': list(numeric),
            'categorical_columns': list(categorical),
            'categorical_reasons': reasons,
            'missing_tokens': list(MISSING_TOKENS),
            'merged_spellings': {
                **({label_column: merged_labels} if merged_labels else {}),
                **spellings}})
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
