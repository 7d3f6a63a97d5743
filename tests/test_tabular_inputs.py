"""Tabular inputs that must not be misread, and run files that must not be half-written.

Issue 15: a stray missing-value token must not turn a numeric column into
hundreds of one-hot columns; one label spelled two ways must not become two
classes; a failed write must not replace a good file.
"""

import csv
import json
import os
import re

import numpy as np
import pytest
from matplotlib.backends import backend_agg
from PIL import Image

from ganad_jax import configs
from ganad_jax import data
from ganad_jax import figures
from ganad_jax import report
from ganad_jax import reporting
from ganad_jax.data import tabular

HEADER = ['f0', 'f1', 'f2', 'f3', 'f4', 'label']


def _write_csv(path, header, rows):
  with open(path, 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(header)
    writer.writerows(rows)
  return str(path)


def _rows(n=60):
  rng = np.random.default_rng(0)
  return [[f'{v:.4f}' for v in rng.normal(size=5)] + ['attack' if i % 4 == 0 else 'normal']
          for i in range(n)]


def _config(path, **overrides):
  config = configs.data.data_config()
  config.source, config.path, config.label_column = 'tabular', path, 'label'
  config.class_name = 'attack'
  for key, value in overrides.items():
    config[key] = value
  return config


def _read(path, **overrides):
  return tabular.read(_config(path, **overrides))


# ------------------------------------------- fault 5: missing-value tokens ---


@pytest.mark.parametrize('token', ['?', ' N/A ', 'null', 'NONE', '-', '', 'nan', 'NA'])
def test_a_stray_missing_token_is_missing_not_a_category(tmp_path, token):
  rows = _rows()
  rows[40][2] = token  # File line 42: the header is line 1.
  path = _write_csv(tmp_path / 't.csv', HEADER, rows)
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
  path = _write_csv(tmp_path / 't.csv', HEADER, rows)
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
  path = _write_csv(tmp_path / 't.csv', HEADER[:5] + ['color', 'label'], rows)
  splits = data.load(_config(path), seed=0)
  info = splits.info['source_info']  # train.py writes splits.info into results.json["data"].
  why = ("non-numeric values such as 'red', 'blue'; missing-value tokens '?' "
         '(20 rows) kept as categories')
  assert info['categorical_columns'] == ['color']
  assert info['categorical_reasons'] == {'color': why}
  assert f"column 'color' is categorical: {why}" in splits.info['notes']
  assert splits.train.x.shape[1] == 5 + 3
  json.dumps(splits.info, allow_nan=False)


# ------------------------------------------------ fault 6: label spellings ---


def _label_csv(tmp_path, labels, n=60):
  rows = [[f'{i * 0.1:.1f}', labels[i % len(labels)]] for i in range(n)]
  return _write_csv(tmp_path / 't.csv', ['f', 'label'], rows)


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
  np.savez(path, x=np.ones((10, 2)), y=(np.arange(10) % 2).astype(np.float64))
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
  path = _write_csv(tmp_path / 't.csv', ['code', 'label'], rows)
  source_pool, table = _read(path, categorical_columns=('code',))
  assert sorted(set(table.categorical['code'])) == ['1', '2']
  assert source_pool.info['merged_spellings'] == {'code': {'1': ['1', '1.0']}}
  rows = [[str(['1', '01', 'x'][i % 3]), 'attack' if i % 4 == 0 else 'normal']
          for i in range(24)]
  path = _write_csv(tmp_path / 't.csv', ['code', 'label'], rows)
  with pytest.raises(ValueError, match=(
      r"^Column 'code' of .*t\.csv spells one number as '1' \(line 2\) and '01' \(line 3\)")):
    _read(path, categorical_columns=('code',))


# ------------------------------------------- fault 11b: atomic run files ---


def _files(directory):
  return sorted(os.listdir(directory))


def test_a_failed_figure_save_keeps_the_good_file(tmp_path, monkeypatch):
  fig = figures._figure(2, 2)
  fig.add_subplot().plot([0, 1], [0, 1])
  path = str(tmp_path / 'figures' / 'roc.png')
  reporting.save_png(fig, path)  # Creates figures/.
  good = open(path, 'rb').read()
  assert good.startswith(b'\x89PNG') and oct(os.stat(path).st_mode & 0o777) == '0o644'

  def half_then_fail(self, f, **kwargs):
    f.write(b'\x89PNG half a figure')
    raise RuntimeError('renderer died')

  monkeypatch.setattr(backend_agg.FigureCanvasAgg, 'print_png', half_then_fail)
  with pytest.raises(RuntimeError, match='renderer died'):
    reporting.save_png(fig, path)
  assert open(path, 'rb').read() == good
  assert _files(tmp_path / 'figures') == ['roc.png']  # No temporary file left.


def test_a_failed_image_or_npz_save_keeps_the_good_file(tmp_path, monkeypatch):
  path = str(tmp_path / 'reconstructions.png')
  grid = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
  reporting.save_image(path, grid)
  np.testing.assert_array_equal(np.asarray(Image.open(path)), grid)
  good = open(path, 'rb').read()
  scores = str(tmp_path / 'scores.npz')
  reporting.save_npz(scores, {'score': np.ones(3, np.float32)})
  good_scores = open(scores, 'rb').read()

  def half_then_fail(self, f, *args, **kwargs):
    f.write(b'partial')
    raise OSError('disk full')

  monkeypatch.setattr(Image.Image, 'save', half_then_fail)
  with pytest.raises(OSError, match='disk full'):
    reporting.save_image(path, grid * 2)
  monkeypatch.setattr(np, 'savez', lambda f, **arrays: half_then_fail(None, f))
  with pytest.raises(OSError, match='disk full'):
    report.save_scores(scores, [0, 1, 1], {'score': np.zeros(3)})
  assert open(path, 'rb').read() == good and open(scores, 'rb').read() == good_scores
  assert _files(tmp_path) == ['reconstructions.png', 'scores.npz']
  with pytest.raises(ValueError, match=r'Cannot tell the image format of .*grid\.xyz'):
    reporting.save_image(str(tmp_path / 'grid.xyz'), grid)
