"""scikit-learn's bundled 8x8 digits: the default source, no download."""

import ml_collections
import numpy as np
from sklearn import datasets

from ganad_jax.data import images
from ganad_jax.data import pool


def load(config: ml_collections.ConfigDict) -> pool.Pool:
  """Loads the 1,797 digits scaled to [-1, 1] and resized to image_size.

  The 8x8 images hold values 0..16; they are scaled to [-1, 1] first and then
  resized as float images (PIL bilinear), so no uint8 rounding happens.

  Args:
    config: the `data` sub-config (image_size, channels).

  Returns:
    The pooled digits, class ids 0..9.
  """
  bunch = datasets.load_digits()
  raw = bunch.images.astype(np.float32) / np.float32(8.0) - np.float32(1.0)
  x = np.clip(images.resize_float(raw, config.image_size), -1.0, 1.0)
  x = x[..., None]
  notes = [images.size_note({raw.shape[1:]}, config.image_size, 'digits'),
           'digits values 0..16 scaled to [-1, 1] before resizing']
  if config.channels == 3:
    x = np.repeat(x, 3, axis=-1)
    notes.append('grayscale digits replicated to 3 channels (RGB)')
  return pool.Pool(
      x=x, labels=bunch.target.astype(np.int64),
      class_names=tuple(str(i) for i in range(10)), name='digits',
      notes=tuple(notes),
      info={'dataset': 'sklearn.datasets.load_digits', 'original_size': [8, 8]})
