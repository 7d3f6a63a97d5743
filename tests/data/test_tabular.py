"""Tests of `data.tabular`: CSV / NPZ tables, missing values, label and category spellings."""

import csv
import json
import re

import numpy as np
import pytest

from ganad_jax import configs
from ganad_jax import data
from ganad_jax.data import tabular
import helpers


def _write_csv(path, rows, header):
  with open(path, 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(header)
    writer.writerows(rows)


def _tabular_rows(n=60):
  rng = np.random.default_rng(0)
  rows = []
  for i in range(n):
    attack = i % 5 == 0
    rows.append([
        f'{(100.0 if attack else rng.uniform(0, 10)):.4f}',  # numeric
        'tcp' if i % 2 else ('icmp' if attack else 'udp'),   # text category
        str(i % 3),                                          # coded category
        'attack' if attack else 'normal',                    # label
    ])
  return rows


def test_tabular_csv_train_only_fit(tmp_path):
  path = str(tmp_path / 't.csv')
  _write_csv(path, _tabular_rows(), ['bytes', 'proto', 'code', 'label'])
  config = helpers.data_config(source='tabular', path=path, class_name='attack',
                               categorical_columns=('code',))
  s = data.load(config, seed=0)
  helpers.check_splits(s)
  assert s.info['source_info']['numeric_columns'] == ['bytes']
  assert s.info['source_info']['categorical_columns'] == ['proto', 'code']
  # bytes + proto {tcp, udp} (icmp only in attacks, unseen) + code {0, 1, 2}.
  assert s.info['feature_names'] == [
      'bytes', 'proto_tcp', 'proto_udp', 'code_0', 'code_1', 'code_2']
  assert s.train.x.shape == (len(s.train.y), 6)
  assert s.info['class_counts'] == {'attack': 12, 'normal': 48}
  assert set(s.test.kinds[s.test.y == 1]) == {'attack'}
  bytes_train = s.train.x[:, 0]
  assert bytes_train.min() == pytest.approx(-1) and bytes_train.max() == (
      pytest.approx(1))
  # Fitted on train only: attacks (100 >> 10) land far outside [-1, 1].
  assert (s.test.x[s.test.y == 1, 0] > 1.5).all()
  # icmp (attacks with even i) never occurs in train: all-zero proto block.
  proto = s.test.x[s.test.y == 1][:, 1:3].sum(axis=1)
  assert (proto == 0).sum() == 6 and (proto == 1).sum() == 6
  np.testing.assert_array_equal(s.train.x[:, 3:].sum(axis=1), 1)


def test_tabular_numeric_labels_sorted_numerically(tmp_path):
  path = str(tmp_path / 't.csv')
  rows = [[str(i * 0.5), str([2, 10, 1][i % 3])] for i in range(60)]
  _write_csv(path, rows, ['f', 'label'])
  s = data.load(helpers.data_config(source='tabular', path=path, class_index=2,
                                    protocol='normal_class'), seed=0)
  assert s.info['class_name'] == '10'  # Classes 1, 2, 10.
  assert set(s.train.kinds) == {'10'}


@pytest.mark.parametrize('layout', ['xy', 'columns'])
def test_tabular_npz(tmp_path, layout):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(50, 3))
  y = np.arange(50) % 2
  path = str(tmp_path / 't.npz')
  if layout == 'xy':
    np.savez(path, x=x, y=y.astype(np.float64))
    config = helpers.data_config(source='tabular', path=path, class_index=1)
  else:
    np.savez(path, a=x[:, 0], b=x[:, 1], color=np.where(y, 'red', 'blue'),
             target=y)
    config = helpers.data_config(source='tabular', path=path, class_index=1,
                                 label_column='target')
  s = data.load(config, seed=0)
  helpers.check_splits(s)
  assert s.info['class_counts'] == {'0': 25, '1': 25}
  assert set(s.test.kinds[s.test.y == 1]) == {'1'}
  width = 3 if layout == 'xy' else 2 + 1  # color is 'blue' only in train.
  assert s.train.x.shape[1] == width


@pytest.mark.parametrize('case,match', [
    ('no_label', r"Label column 'label' not in .*columns present: "
     r"\['a', 'b', 'kind'\]"),
    ('nan', r"NaN / Inf / empty values in numeric columns .*'a' \(2\), "
     r"'b' \(1\)"),
    ('class_range', r"class_index 5 out of range: tabular file .* has classes "
     r"0..1 \(\['x', 'y'\]\)"),
    ('class_name', r"class_name 'z' not found"),
    ('categorical', r"categorical_columns \['nope'\] not among"),
    ('extension', r'must end in \.csv or \.npz'),
])
def test_tabular_bad_input(tmp_path, case, match):
  path = str(tmp_path / ('t.txt' if case == 'extension' else 't.csv'))
  rows = [[str(i), str(i * 2), 'x' if i % 2 else 'y'] for i in range(40)]
  header = ['a', 'b', 'kind']
  overrides = {'label_column': 'kind'}
  if case == 'no_label':
    overrides = {}
  elif case == 'nan':
    rows[3][0], rows[4][0], rows[5][1] = 'nan', '', 'inf'
  elif case == 'class_range':
    overrides['class_index'] = 5
  elif case == 'class_name':
    overrides['class_name'] = 'z'
  elif case == 'categorical':
    overrides['categorical_columns'] = ('nope',)
  _write_csv(path, rows, header)
  with pytest.raises(ValueError, match=match):
    data.load(helpers.data_config(source='tabular', path=path, **overrides), seed=0)


HEADER = ['f0', 'f1', 'f2', 'f3', 'f4', 'label']


def _csv_file(path, header, rows):
  with open(path, 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(header)
    writer.writerows(rows)
  return str(path)


def _rows(n=60):
  rng = np.random.default_rng(0)
  return [[f'{v:.4f}' for v in rng.normal(size=5)] + ['attack' if i % 4 == 0 else 'normal']
          for i in range(n)]


def _table_config(path, **overrides):
  config = configs.data.data_config()
  config.source, config.path, config.label_column = 'tabular', path, 'label'
  config.class_name = 'attack'
  for key, value in overrides.items():
    config[key] = value
  return config


def _read(path, **overrides):
  return tabular.read(_table_config(path, **overrides))


@pytest.mark.parametrize('token', ['?', ' N/A ', 'null', 'NONE', '-', '', 'nan', 'NA'])
def test_a_stray_missing_token_is_missing_not_a_category(tmp_path, token):
  rows = _rows()
  rows[40][2] = token  # File line 42: the header is line 1.
  path = _csv_file(tmp_path / 't.csv', HEADER, rows)
  with pytest.raises(ValueError, match=(
      r"^NaN / Inf / empty values in numeric columns of .*t\.csv: 'f2' \(1\); "
      rf"first in 'f2': line 42 {re.escape(repr(token.strip()))}\. Missing-value tokens .*")):
    _read(path)


def test_npz_nan_names_its_row(tmp_path):
  x = np.random.default_rng(0).normal(size=(30, 3))
  x[7, 1] = np.nan
  path = str(tmp_path / 't.npz')
  np.savez(path, x=x, y=np.arange(30) % 2)
  with pytest.raises(ValueError, match=r"'x1' \(1\); first in 'x1': row 7 'nan'"):
    _read(path)


def test_a_column_of_numbers_and_text_is_refused_unless_listed(tmp_path):
  rows = _rows()
  rows[40][2] = '12a'
  path = _csv_file(tmp_path / 't.csv', HEADER, rows)
  with pytest.raises(ValueError, match=(
      r"^Column 'f2' of .*t\.csv mixes numbers and text: '12a' at line 42, "
      r"'-?[0-9.]+' at line 2 \(1 text, 59 number cells\); .*data\.categorical_columns\.$")):
    _read(path)
  source_pool, table = _read(path, categorical_columns=('f2',))
  assert list(table.categorical) == ['f2'] and len(table.numeric) == 4
  assert source_pool.info['categorical_reasons'] == {
      'f2': 'listed in data.categorical_columns'}


def test_categorical_columns_and_why_reach_the_results_info(tmp_path):
  rows = _rows()
  for i, row in enumerate(rows):
    row.insert(5, ['red', 'blue', '?'][i % 3])
  path = _csv_file(tmp_path / 't.csv', HEADER[:5] + ['color', 'label'], rows)
  splits = data.load(_table_config(path), seed=0)
  info = splits.info['source_info']  # train.py writes splits.info into results.json["data"].
  why = ("non-numeric values such as 'red', 'blue'; missing-value tokens '?' "
         '(20 rows) kept as categories')
  assert info['categorical_columns'] == ['color']
  assert info['categorical_reasons'] == {'color': why}
  assert f"column 'color' is categorical: {why}" in splits.info['notes']
  assert splits.train.x.shape[1] == 5 + 3
  json.dumps(splits.info, allow_nan=False)


def _label_csv(tmp_path, labels, n=60):
  rows = [[f'{i * 0.1:.1f}', labels[i % len(labels)]] for i in range(n)]
  return _csv_file(tmp_path / 't.csv', ['f', 'label'], rows)


def test_numeric_labels_are_grouped_by_value(tmp_path):
  path = _label_csv(tmp_path, ['1', '1.0', '0', ' 01 ', '0.50'])
  source_pool, _ = _read(path)
  assert source_pool.class_names == ('0', '0.5', '1')
  np.testing.assert_array_equal(np.bincount(source_pool.labels), [12, 12, 36])
  assert "label values grouped by number: '01', '1', '1.0' are class '1'" in (
      source_pool.notes)
  assert source_pool.info['merged_spellings'] == {'label': {'1': ['01', '1', '1.0']}}


def test_label_names_longer_than_every_spelling_are_not_cut(tmp_path):
  path = _label_csv(tmp_path, ['.5', '1', '1e3'])  # Names '0.5' and '1000' are wider.
  source_pool, _ = _read(path)
  assert source_pool.class_names == ('0.5', '1', '1000')


def test_npz_float_labels_name_whole_numbers_as_integers(tmp_path):
  path = str(tmp_path / 't.npz')
  np.savez(path, x=np.arange(20.0).reshape(10, 2), y=(np.arange(10) % 2).astype(np.float64))
  source_pool, _ = _read(path)
  assert source_pool.class_names == ('0', '1')


@pytest.mark.parametrize('labels,match', [
    (['1', '01', 'other'],
     r"^Label column 'label' of .*t\.csv mixes numbers and text: '1' at line 2, "
     r"'other' at line 4; .*use one kind of label\.$"),
    (['1', 'one', '0'], r"mixes numbers and text: '1' at line 2, 'one' at line 3"),
    (['Attack', 'attack', 'normal'],
     r"^Label column 'label' of .*t\.csv spells one word in two cases as 'Attack' "
     r"\(line 2\) and 'attack' \(line 3\) among text values"),
    (['attack', '?', 'normal'],
     r"^Label column 'label' of .*t\.csv has a missing or non-finite label '\?' at line 3 "),
    (['0', '1', 'inf'], r"missing or non-finite label 'inf' at line 4"),
])
def test_label_spellings_that_cannot_be_resolved_are_refused(tmp_path, labels, match):
  with pytest.raises(ValueError, match=match):
    _read(_label_csv(tmp_path, labels))


def test_categorical_values_follow_the_label_rule(tmp_path):
  rows = [[str(['1', '1.0', '2'][i % 3]), 'attack' if i % 4 == 0 else 'normal']
          for i in range(24)]
  path = _csv_file(tmp_path / 't.csv', ['code', 'label'], rows)
  source_pool, table = _read(path, categorical_columns=('code',))
  assert sorted(set(table.categorical['code'])) == ['1', '2']
  assert source_pool.info['merged_spellings'] == {'code': {'1': ['1', '1.0']}}
  rows = [[str(['1', '01', 'x'][i % 3]), 'attack' if i % 4 == 0 else 'normal']
          for i in range(24)]
  path = _csv_file(tmp_path / 't.csv', ['code', 'label'], rows)
  with pytest.raises(ValueError, match=(
      r"^Column 'code' of .*t\.csv spells one number as '1' \(line 2\) and '01' \(line 3\)")):
    _read(path, categorical_columns=('code',))


def test_a_file_whose_features_are_all_constant_is_refused_naming_them(tmp_path):
  rows = [['1.5', 'tcp', 'attack' if i % 4 == 0 else 'normal'] for i in range(40)]
  path = _csv_file(tmp_path / 't.csv', ['bytes', 'proto', 'label'], rows)
  with pytest.raises(ValueError, match=re.escape(
      f"Every feature column of {path} is constant ('bytes' = '1.5', 'proto' = 'tcp'): "
      'every row has the same features')):
    _read(path)
  npz = str(tmp_path / 't.npz')
  np.savez(npz, x=np.zeros((40, 4)), y=np.arange(40) % 2)
  with pytest.raises(ValueError, match=r"constant \('x0' = '0.0', 'x1' = '0.0', 'x2' = "
                                       r"'0.0' and 1 more\)"):
    _read(npz)
  rows[0][0] = '2.5'  # One column that varies is enough: constant columns beside it pass.
  _read(_csv_file(tmp_path / 'u.csv', ['bytes', 'proto', 'label'], rows))
