"""Data for anomaly detection: sources, protocols, and `load`.

  splits = data.load(config.data, seed)
  splits.train.x  # float32 images (N, H, W, C) in [-1, 1] or rows (N, F).

Sources: 'digits' (sklearn, bundled, the default), 'tfds' (any image set via
`tfds.data_source`, no TensorFlow), 'idx' (MNIST-format files), 'folder'
(MVTec AD layout, with masks), 'tabular' (CSV / NPZ), 'sklearn_tabular'
(breast_cancer, wine, iris, bundled with scikit-learn). Protocols:
'anomaly_class' (GANomaly: one class is the anomaly), 'normal_class'
(one-vs-rest: one class is normal) and 'folder'. See
`ganad_jax.configs.data` for the fields and `protocols` for the exact split
arithmetic.
"""

from ganad_jax.data import loader as _loader
from ganad_jax.data import splits as _splits

Split = _splits.Split
Splits = _splits.Splits
digest = _splits.digest
load = _loader.load
