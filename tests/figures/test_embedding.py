"""Tests of `figures.tsne_figure`: classes coloured apart, subsampled, NaN refused."""

import numpy as np
import pytest

from ganad_jax import figures


def test_tsne_colours_classes_and_subsamples():
  rng = np.random.default_rng(0)
  labels = np.repeat([0, 1], [40, 20])
  features = rng.normal(size=(60, 8)) + 4.0 * labels[:, None]
  fig = figures.tsne_figure(features, labels, max_points=50)
  sizes = [len(c.get_offsets()) for c in fig.axes[0].collections]
  assert sum(sizes) == 50 and len(sizes) == 2
  with pytest.raises(ValueError, match="NaN"):
    figures.tsne_figure(np.full((10, 2), np.nan), np.zeros(10))
