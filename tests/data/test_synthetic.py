"""Tests of `data.synthetic`: CutPaste anomalies made from normal images."""

import numpy as np
import pytest

from ganad_jax.data import synthetic
import helpers


def test_cutpaste_pastes_one_rectangle_from_the_same_image():
  x = helpers.smooth_images(6)
  copies, masks = synthetic.cutpaste(x, np.random.default_rng(1))
  again, _ = synthetic.cutpaste(x, np.random.default_rng(1))
  np.testing.assert_array_equal(copies, again)  # Same seed, same numpy program.
  assert masks.shape == (6, 32, 32) and np.all(masks.any(axis=(1, 2)))
  np.testing.assert_array_equal(np.any(x != copies, axis=-1) & ~masks, False)
  assert copies.shape == x.shape and copies.dtype == np.float32
  assert copies.min() >= -1.0 and copies.max() <= 1.0
  for mask in masks:  # One rectangle of at most 15 % of the image (rounding aside).
    rows, cols = np.nonzero(mask)
    assert mask.sum() == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
    assert mask.sum() <= 0.15 * 32 * 32 + 32


def test_cutpaste_refuses_what_is_not_an_image_batch():
  with pytest.raises(ValueError, match=r"must be \(N, H, W, C\)"):
    synthetic.cutpaste(np.zeros((4, 10)), np.random.default_rng(0))
