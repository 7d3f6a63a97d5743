"""Tests of `patches`: tiles, stitching, random crops, image scores, and a tiny run with them."""


import jax
import numpy as np
import pytest

from ganad_jax import data
from ganad_jax import patches
from ganad_jax import train
from ganad_jax import workdir
import helpers


def _protocol(size=4, stride=3, image_score="max_map", sigma=0.0):
  return patches.Protocol(size, stride, image_score, sigma)


@pytest.mark.parametrize("length,size,stride,expected", [
    (10, 4, 3, [0, 3, 6]),
    (10, 4, 4, [0, 4, 6]),  # The last tile sits flush with the end.
    (8, 4, 4, [0, 4]),
    (5, 5, 1, [0]),
    (7, 2, 2, [0, 2, 4, 5]),
])
def test_tile_starts_cover_the_length(length, size, stride, expected):
  starts = patches.tile_starts(length, size, stride)
  assert starts.tolist() == expected
  covered = np.zeros(length, bool)
  for s in starts:
    covered[s:s + size] = True
  assert covered.all()


@pytest.mark.parametrize("length,size,stride", [(8, 9, 2), (8, 2, 3), (8, 2, 0)])
def test_tile_starts_refuse_tiles_that_cannot_cover(length, size, stride):
  with pytest.raises(ValueError, match=f"Tiles of {size} with stride {stride} cannot cover"):
    patches.tile_starts(length, size, stride)


def test_tiles_are_the_image_windows_image_major():
  images = np.arange(2 * 7 * 10 * 3, dtype=np.float32).reshape(2, 7, 10, 3)
  protocol = _protocol(size=4, stride=3)
  tiles = patches.tile(images, protocol)
  rows, cols = patches.grid((7, 10), protocol)
  assert tiles.shape == (2 * len(rows), 4, 4, 3)
  for n in range(2):
    for t, (r, c) in enumerate(zip(rows, cols)):
      np.testing.assert_array_equal(tiles[n * len(rows) + t], images[n, r:r + 4, c:c + 4])


def test_stitching_the_tiles_gives_the_images_back():
  images = np.random.default_rng(0).normal(size=(3, 9, 11, 2))
  protocol = _protocol(size=4, stride=3)
  np.testing.assert_allclose(patches.stitch(patches.tile(images, protocol), (9, 11), protocol),
                             images, rtol=1e-12)


def test_stitching_constant_tiles_gives_the_constant():
  protocol = _protocol(size=4, stride=2)
  num_tiles = len(patches.grid((8, 10), protocol)[0])
  maps = np.full((2 * num_tiles, 4, 4), 0.7)
  np.testing.assert_allclose(patches.stitch(maps, (8, 10), protocol), 0.7)
  scalar = patches.stitch(np.repeat([1.5, -2.0], num_tiles), (8, 10), protocol)
  np.testing.assert_allclose(scalar[0], 1.5)
  np.testing.assert_allclose(scalar[1], -2.0)


def test_stitching_averages_where_tiles_overlap():
  protocol = _protocol(size=2, stride=1)  # Three tiles along 4 pixels, one row.
  stitched = patches.stitch(np.array([0.0, 3.0, 6.0]), (2, 4), protocol)
  np.testing.assert_allclose(stitched[0, 0], [0.0, 1.5, 4.5, 6.0])


def test_stitch_refuses_tiles_of_another_grid():
  with pytest.raises(ValueError, match=r"expected \(N \* 9, 4, 4, ...\)"):
    patches.stitch(np.zeros((10, 4, 4)), (10, 10), _protocol(size=4, stride=3))


def test_random_crops_are_windows_fixed_by_the_key():
  images = np.arange(5 * 9 * 12, dtype=np.float32).reshape(5, 9, 12, 1)
  key = jax.random.key(3)
  crops = np.asarray(patches.random_crops(key, images, 4))
  assert crops.shape == (5, 4, 4, 1)
  for image, crop in zip(images, crops):  # Pixel values are unique: the corner gives the window.
    r, c = divmod(int(crop[0, 0, 0]) % (9 * 12), 12)
    assert r + 4 <= 9 and c + 4 <= 12
    np.testing.assert_array_equal(crop, image[r:r + 4, c:c + 4])
  np.testing.assert_array_equal(np.asarray(patches.random_crops(key, images, 4)), crops)
  other = np.asarray(patches.random_crops(jax.random.key(4), images, 4))
  assert not np.array_equal(other, crops)


def test_random_crops_reach_every_position():
  images = np.arange(6 * 6, dtype=np.float32).reshape(1, 6, 6, 1).repeat(400, axis=0)
  corners = np.asarray(patches.random_crops(jax.random.key(0), images, 4))[:, 0, 0, 0]
  assert set(corners.astype(int).tolist()) == {r * 6 + c for r in range(3) for c in range(3)}


def test_image_outputs_max_map_and_mean_patches():
  protocol = _protocol(size=2, stride=2)  # 4x4 images: 4 tiles each, no overlap.
  tile_scores = np.array([1.0, 2.0, 3.0, 4.0, 0.0, 0.0, 0.0, 8.0], np.float32)
  maps = np.zeros((8, 2, 2), np.float32)
  maps[1, 0, 1] = 5.0  # Image 0, tile 1 (top right): pixel (0, 3).
  recon = np.ones((8, 2, 2, 1), np.float32)
  out = patches.image_outputs({"score": tile_scores, "score_alt": tile_scores * 2, "map": maps,
                               "recon": recon}, (4, 4), protocol)
  np.testing.assert_allclose(out["score"], [5.0, 0.0])  # The map's maximum.
  np.testing.assert_allclose(out["score_mean_patches"], [2.5, 2.0])
  np.testing.assert_allclose(out["score_alt"], [8.0, 16.0])  # No map: its tiles' constants.
  assert out["map"].shape == (2, 4, 4) and out["map"][0, 0, 3] == 5.0
  assert out["recon"].shape == (2, 4, 4, 1) and (out["recon"] == 1.0).all()
  mean = patches.image_outputs({"score": tile_scores}, (4, 4),
                               protocol._replace(image_score="mean_patches"))
  np.testing.assert_allclose(mean["score"], [2.5, 2.0])
  np.testing.assert_allclose(mean["score_max_map"], [4.0, 8.0])
  np.testing.assert_allclose(mean["map"][1, 2:, 2:], 8.0)  # A map from the tile scores.


def test_max_map_blurs_before_the_maximum():
  protocol = _protocol(size=4, stride=4, sigma=1.0)
  maps = np.zeros((4, 4, 4), np.float32)
  maps[0, 1, 1] = 1.0  # One hot pixel in image 0's first tile (of 4).
  out = patches.image_outputs({"score": np.zeros(4, np.float32), "map": maps}, (8, 8), protocol)
  assert 0.0 < out["score"][0] < 0.2  # Spread by the blur (a 2-D Gaussian peak of 1 / 2 pi).


def test_an_output_that_is_no_tile_is_refused():
  with pytest.raises(ValueError, match="'z' of shape \\(4, 3\\) is neither a score nor a 2x2 tile"):
    patches.image_outputs({"score": np.zeros(4), "z": np.zeros((4, 3))}, (4, 4),
                          _protocol(size=2, stride=2))


def test_tiny_run_with_patches_end_to_end(tmp_path):
  """configs/test.py on 32x48 photos with masks, 16x16 crops, tiles 8 apart: image and pixel metrics."""
  config = helpers.tiny_config("ae", **{
      "data.source": "folder", "data.protocol": "folder", "data.max_per_class": 0,
      "data.path": helpers.spot_folder(str(tmp_path / "cat")), "data.image_size": 32,
      "data.image_width": 48, "patch.size": 16, "patch.stride": 8})
  results = train.train_and_evaluate(config, str(tmp_path / "run"))
  metrics = results["metrics"]
  assert set(metrics) == {"score", "score_mean_patches"}
  for value in (metrics["score"]["auroc"], metrics["score"]["pixel_auroc"],
                metrics["score_mean_patches"]["auroc"]):
    assert 0.0 <= value <= 1.0
  assert results["data"]["sizes"]["test"] == 8
  with np.load(tmp_path / "run" / "scores.npz") as saved:
    assert saved["score"].shape == saved["score_mean_patches"].shape == (8,)
    # The restored workdir's scorer tiles and stitches as training's did: the same scores.
    trained = workdir.restore(str(tmp_path / "run"), (32, 48, 1))
    test = data.load(config.data, config.seed).test
    out = trained.scorer.members(trained.state, test.x)[0]
    np.testing.assert_array_equal(out["score"], saved["score"])
    assert out["map"].shape == (8, 32, 48)
