"""Tests of the image figures of `figures`: maps align with masks, reconstructions, latent walks."""

import numpy as np
import pytest

from ganad_jax import figures
import helpers


def test_heatmap_aligns_map_and_mask():
  split, out = helpers.masked_split()
  idx = figures.pick_examples(split.y, 4, prefer=split.masks.max(axis=(1, 2)) > 0)
  assert split.y[idx].tolist() == [0, 0, 1, 1]
  fig = figures.heatmap_figure(split.x[idx], out["map"][idx], split.masks[idx], split.y[idx])
  axes = np.asarray(fig.axes[:16]).reshape(4, 4)
  for row, i in enumerate(idx):
    mask_img = axes[row, 1].get_images()[0]
    map_img = axes[row, 2].get_images()[0]
    np.testing.assert_array_equal(mask_img.get_array(), split.masks[i])
    np.testing.assert_array_equal(map_img.get_array(), out["map"][i])
    extents = {tuple(im.get_extent()) for ax in axes[row] for im in ax.get_images()}
    assert len(extents) == 1  # Same pixel grid and orientation in every column.
    if split.y[i]:
      # The map's hottest pixels lie inside the mask.
      assert split.masks[i][out["map"][i] >= out["map"][i].max() - 1e-6].all()
      assert axes[row, 3].collections  # The mask outline drawn over the map.
  assert axes[0, 1].get_title() == "ground-truth mask"


def test_reconstruction_grid_rows_and_errors():
  split, out = helpers.masked_split()
  fig = figures.reconstruction_figure(split.x[:5], out["recon"][:5], labels=split.y[:5],
                                  scores=out["score"][:5])
  image_axes = [ax for ax in fig.axes if ax.get_images()]
  assert len(image_axes) == 15
  assert [image_axes[i].get_ylabel() for i in (0, 5, 10)] == ["input", "reconstruction",
                                                              "residual"]
  with pytest.raises(ValueError, match="differ in shape"):
    figures.reconstruction_figure(split.x[:5], out["recon"][:4])
  with pytest.raises(ValueError, match=r"\(N, H, W, C\)"):
    figures.reconstruction_figure(split.x[:5, ..., 0], out["recon"][:5])


def test_latent_walk_interpolates_between_the_endpoints():
  seen = []

  def generate(z):
    seen.append(np.asarray(z))
    return np.tanh(np.repeat(z[:, :1, None, None], 16, axis=1).repeat(16, axis=2))

  z0, z1 = np.zeros(4), np.ones(4)
  fig = figures.latent_walk_figure(generate, z0, z1, steps=5)
  np.testing.assert_allclose(seen[0][0], z0)
  np.testing.assert_allclose(seen[0][-1], z1)
  np.testing.assert_allclose(seen[0][:, 0], np.linspace(0, 1, 5), rtol=1e-6)
  assert [ax.get_xlabel() for ax in fig.axes] == [f"t={t:.2f}" for t in np.linspace(0, 1, 5)]
  vectors = figures.latent_walk_figure(lambda z: np.tile(z, (1, 3)), z0, z1, steps=3)
  assert vectors.axes[0].get_images()[0].get_array().shape == (3, 12)
