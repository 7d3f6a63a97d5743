"""scikit-learn's bundled tabular sets (no download) as a tabular source.

  config.data.source = 'sklearn_tabular'
  config.data.sklearn_name = 'breast_cancer'  # Or 'wine', 'iris'.

`read` returns what `tabular.read` returns for a file: every feature is a
numeric column and the classes are the set's `target_names` in target order,
so the protocol split, the train-only MinMax scaling to [-1, 1] and the info
are exactly those of the 'tabular' source. breast_cancer: 569 rows, 30
features, classes 'malignant' (212) and 'benign' (357); with protocol
'anomaly_class' and class_name 'malignant' the malignant tumours are the
anomalies.
"""

import ml_collections
import numpy as np
from sklearn import datasets

from ganad_jax.data import pool
from ganad_jax.data import tabular

LOADERS = {
    'breast_cancer': datasets.load_breast_cancer,
    'iris': datasets.load_iris,
    'wine': datasets.load_wine,
}


def read(config: ml_collections.ConfigDict) -> tuple[pool.Pool, tabular.Table]:
  """Loads `config.sklearn_name` as typed columns and labels.

  Args:
    config: the `data` sub-config (sklearn_name).

  Returns:
    (the pool: labels and class names, x None; the numeric feature columns).

  Raises:
    ValueError: an unknown name, listing the known ones.
  """
  name = config.sklearn_name
  if name not in LOADERS:
    raise ValueError(
        f'Unknown sklearn_name {name!r} (source sklearn_tabular); bundled sets: '
        f'{sorted(LOADERS)}.')
  bunch = LOADERS[name]()
  numeric = {str(feature): bunch.data[:, j].astype(np.float64)
             for j, feature in enumerate(bunch.feature_names)}
  notes = (
      f'scikit-learn load_{name}: {len(bunch.target)} rows, {len(numeric)} '
      'numeric feature columns',
      'numeric columns MinMax-scaled to [-1, 1], fitted on the training split '
      'only',
  )
  source_pool = pool.Pool(
      x=None, labels=bunch.target.astype(np.int64),
      class_names=tuple(str(n) for n in bunch.target_names),
      name=f'sklearn {name}', notes=notes,
      info={'dataset': f'sklearn.datasets.load_{name}',
            'numeric_columns': list(numeric), 'categorical_columns': [],
            'categorical_reasons': {}})
  return source_pool, tabular.Table(numeric=numeric, categorical={})
