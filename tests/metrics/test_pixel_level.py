"""Tests of the pixel-level metrics of ganad_jax.metrics (pixel_auroc, pro_curve, aupro)."""

from __future__ import annotations

import bisect

import hypothesis
import numpy as np
import pytest
from hypothesis import strategies as st
from scipy import ndimage
from sklearn import metrics as sk_metrics

from ganad_jax import metrics

SETTINGS = hypothesis.settings(max_examples=50, deadline=None)


# ---------------------------------------------------------------------------
# Oracles (independent, deliberately naive implementations)
# ---------------------------------------------------------------------------


def _mvtec_reference_aupro(masks, maps, fpr_limit):
  """Port of the MVTec AD evaluation code (compute_pro + trapezoid).

  Same algorithm as MVTec's ``generic_util.py``/``pro_curve_util.py``, except
  that FPRs are kept in float64 (the original casts them to float32).
  """
  structure = np.ones((3, 3), dtype=int)
  num_ok_pixels = 0
  num_gt_regions = 0
  fp_changes = np.zeros(masks.shape, dtype=np.uint32)
  pro_changes = np.zeros(masks.shape, dtype=np.float64)
  for i, gt_map in enumerate(masks):
    labeled, n_components = ndimage.label(gt_map, structure)
    num_gt_regions += n_components
    ok_mask = labeled == 0
    num_ok_pixels += np.sum(ok_mask)
    fp_changes[i][ok_mask] = 1
    for k in range(n_components):
      region_mask = labeled == (k + 1)
      pro_changes[i][region_mask] = 1.0 / np.sum(region_mask)
  flat = maps.ravel().astype(np.float64)
  sort_idxs = np.argsort(flat)[::-1]
  scores_sorted = flat[sort_idxs]
  fprs = np.cumsum(fp_changes.ravel()[sort_idxs]) / num_ok_pixels
  pros = np.cumsum(pro_changes.ravel()[sort_idxs]) / num_gt_regions
  keep = np.append(np.diff(scores_sorted) != 0, np.True_)
  fprs = np.clip(fprs[keep], None, 1.0)
  pros = np.clip(pros[keep], None, 1.0)
  x = np.concatenate(([0.0], fprs, [1.0]))
  y = np.concatenate(([0.0], pros, [1.0]))
  # trapezoid(x, y, x_max=fpr_limit)
  correction = 0.0
  if fpr_limit not in x:
    ins = bisect.bisect(x, fpr_limit)
    assert 0 < ins < len(x)
    y_interp = y[ins - 1] + (y[ins] - y[ins - 1]) * (fpr_limit - x[ins - 1]) / (
      x[ins] - x[ins - 1]
    )
    correction = 0.5 * (y_interp + y[ins - 1]) * (fpr_limit - x[ins - 1])
  mask = x <= fpr_limit
  x, y = x[mask], y[mask]
  area = np.sum(0.5 * (y[1:] + y[:-1]) * (x[1:] - x[:-1])) + correction
  return area / fpr_limit


def _threshold_loop_aupro(masks, maps, fpr_limit):
  """AUPRO from its definition: loop over every distinct threshold."""
  masks = masks.astype(bool)
  regions = []
  for i, m in enumerate(masks):
    labeled, n = ndimage.label(m, np.ones((3, 3)))
    regions += [(i, labeled == k) for k in range(1, n + 1)]
  normal = maps[~masks]
  points = [(0.0, 0.0)]
  for t in np.unique(maps)[::-1]:
    fpr = np.mean(normal >= t)
    pro = np.mean([np.mean(maps[i][r] >= t) for i, r in regions])
    points.append((fpr, pro))
  points.append((1.0, 1.0))
  area = 0.0
  for (x0, y0), (x1, y1) in zip(points[:-1], points[1:]):
    if x0 >= fpr_limit:
      break
    if x1 > fpr_limit:  # partial segment: interpolate at the limit
      y1 = y0 + (y1 - y0) * (fpr_limit - x0) / (x1 - x0)
      x1 = fpr_limit
    area += 0.5 * (y0 + y1) * (x1 - x0)
  return area / fpr_limit


def _random_masks(rng, n, h, w, n_rects=2):
  """Masks with a few random rectangles per image (some images empty)."""
  masks = np.zeros((n, h, w), dtype=np.uint8)
  for i in range(n):
    if i % 3 == 2:
      continue
    for _ in range(n_rects):
      y, x = rng.integers(0, h - 2), rng.integers(0, w - 2)
      dy, dx = rng.integers(1, max(2, h // 4)), rng.integers(1, max(2, w // 4))
      masks[i, y : y + dy, x : x + dx] = 1
  return masks


# ---------------------------------------------------------------------------
# Hypothesis strategies
# ---------------------------------------------------------------------------


@st.composite
def masks_and_maps(draw):
  """Small (N, H, W) masks with both classes and non-constant, tied maps."""
  n, h, w = draw(st.integers(1, 3)), draw(st.integers(2, 7)), draw(st.integers(2, 7))
  size = n * h * w
  masks = np.array(
    draw(st.lists(st.integers(0, 1), min_size=size, max_size=size))
  ).reshape(n, h, w)
  hypothesis.assume(0 < masks.sum() < size)
  levels = draw(st.integers(2, 12))  # few levels -> many ties
  maps = np.array(
    draw(st.lists(st.integers(0, levels), min_size=size, max_size=size)),
    dtype=np.float64,
  ).reshape(n, h, w)
  hypothesis.assume(np.unique(maps).size > 1)
  return masks, maps


# ---------------------------------------------------------------------------
# Pixel-level metrics
# ---------------------------------------------------------------------------


def test_pixel_auroc_agrees_with_sklearn_on_flattened_arrays():
  rng = np.random.default_rng(2)
  masks = _random_masks(rng, 6, 32, 32)
  maps = rng.random((6, 32, 32)).astype(np.float32) + 0.3 * masks
  maps[:, ::4] = np.round(maps[:, ::4], 1)  # ties across classes
  expected = sk_metrics.roc_auc_score(masks.ravel(), maps.ravel())
  assert metrics.pixel_auroc(masks, maps) == pytest.approx(expected, abs=1e-12)
  assert metrics.pixel_auroc(masks.astype(bool), maps.astype(np.float64)) == (
    pytest.approx(expected, abs=1e-12)
  )


@SETTINGS
@hypothesis.given(masks_and_maps())
def test_pixel_auroc_matches_sklearn_property(data):
  masks, maps = data
  assert metrics.pixel_auroc(masks, maps) == pytest.approx(
    sk_metrics.roc_auc_score(masks.ravel(), maps.ravel()), abs=1e-12
  )


def test_aupro_perfect_map_is_one():
  rng = np.random.default_rng(3)
  masks = _random_masks(rng, 5, 24, 24)
  for maps in (masks.astype(np.float32), masks + 0.5 * rng.random(masks.shape)):
    for limit in (0.01, 0.3, 1.0):
      assert metrics.aupro(masks, maps, fpr_limit=limit) == pytest.approx(1.0)
  # Worst possible map (defects score lowest): PRO stays 0 until FPR = 1.
  assert metrics.aupro(masks, -masks.astype(float)) == pytest.approx(0.0)


def test_aupro_random_noise_map_is_low():
  # For a random map PRO(fpr) ~ fpr, so the normalised area is ~ limit / 2.
  rng = np.random.default_rng(4)
  masks = _random_masks(rng, 12, 32, 32, n_rects=3)
  maps = rng.random(masks.shape)
  value = metrics.aupro(masks, maps, fpr_limit=0.3)
  assert abs(value - 0.15) < 0.04
  assert metrics.aupro(masks, maps, fpr_limit=1.0) == pytest.approx(0.5, abs=0.05)


# One image of a single row (1, 1, 10):
#   index:  0    1    2    3    4    5    6    7    8    9
#   mask:   1    0    1    1    1    0    0    0    0    0
#   region: A    -    B    B    B    -    -    -    -    -
#   map:   .9   .7   .8   .5   .3   .6   .4   .2   .1   .0
# 2 regions (A: 1 px, B: 3 px) -> PRO increment 1/2 per A pixel, 1/6 per B
# pixel; 6 normal pixels -> FPR increment 1/6. Descending thresholds give
# the vertices (FPR, PRO): (0,0) .9->(0,1/2) .8->(0,2/3) .7->(1/6,2/3)
# .6->(1/3,2/3) .5->(1/3,5/6) .4->(1/2,5/6) .3->(1/2,1) ... (1,1).
# Areas: [0,1/3] at 2/3 = 2/9; [1/3,1/2] at 5/6 = 5/36; [1/2,1] at 1 = 1/2.
_HAND_MASK = np.array([[[1, 0, 1, 1, 1, 0, 0, 0, 0, 0]]])
_HAND_MAP = np.array([[[0.9, 0.7, 0.8, 0.5, 0.3, 0.6, 0.4, 0.2, 0.1, 0.0]]])


@pytest.mark.parametrize(
  "fpr_limit, expected",
  [
    (0.25, (0.25 * 2 / 3) / 0.25),  # flat at 2/3 -> 2/3
    (0.5, (2 / 9 + 5 / 36) / 0.5),  # = 13/18
    (1.0, 2 / 9 + 5 / 36 + 1 / 2),  # = 31/36
  ],
)
def test_aupro_hand_computed_two_regions(fpr_limit, expected):
  value = metrics.aupro(_HAND_MASK, _HAND_MAP, fpr_limit=fpr_limit)
  assert value == pytest.approx(expected, abs=1e-12)


def test_aupro_hand_computed_tie_interpolates_at_limit():
  # As above but B's middle pixel scores 0.6, tying the normal pixel 5.
  # Vertices: (0,0) (0,1/2) (0,2/3) (1/6,2/3) then the tie group {N, B}
  # gives the diagonal to (1/3,5/6). At FPR 1/4 the diagonal (slope 1) is
  # at 2/3 + 1/12 = 3/4. Area = 1/6 * 2/3 + 1/12 * (2/3 + 3/4) / 2
  # = 1/9 + 17/288 = 49/288; normalised by 1/4 -> 49/72.
  maps = _HAND_MAP.copy()
  maps[0, 0, 3] = 0.6
  assert metrics.aupro(_HAND_MASK, maps, fpr_limit=0.25) == pytest.approx(
    49 / 72, abs=1e-12
  )


def test_aupro_uses_8_connectivity():
  # Defects at (0,0), (1,1), (1,2): one region with 8-connectivity (3 px),
  # two regions {(0,0)}, {(1,1),(1,2)} with 4-connectivity. Only (0,0) is
  # detected before any normal pixel: PRO = 1/3 (8-conn), would be 1/2
  # with 4-conn, for all FPR < 1.
  masks = np.zeros((1, 3, 3), dtype=int)
  masks[0, 0, 0] = masks[0, 1, 1] = masks[0, 1, 2] = 1
  maps = np.where(masks == 1, 0.0, 0.5)
  maps[0, 0, 0] = 1.0
  assert metrics.aupro(masks, maps) == pytest.approx(1 / 3, abs=1e-12)


def test_aupro_weighs_regions_equally_across_images():
  # Image 0: one 2-px region, detected first. Image 1: three 1-px regions,
  # scored below every normal pixel. PRO = 1/4 (regions pooled over all
  # images) up to FPR 1; per-image averaging would give 1/2 and pixel
  # recall 2/5.
  masks = np.array([[[1, 1, 0, 0, 0, 0]], [[1, 0, 1, 0, 1, 0]]])
  maps = np.where(masks == 1, 0.0, 0.5)
  maps[0, 0, :2] = 1.0
  assert metrics.aupro(masks, maps, fpr_limit=0.3) == pytest.approx(0.25, abs=1e-12)


def test_aupro_fpr_limit_respected():
  values = [metrics.aupro(_HAND_MASK, _HAND_MAP, fpr_limit=x) for x in (0.25, 0.5, 1.0)]
  assert len(set(values)) == 3
  rng = np.random.default_rng(5)
  masks = _random_masks(rng, 4, 16, 16)
  maps = rng.random(masks.shape) + 0.4 * masks
  for limit in (0.05, 0.1, 0.3, 0.6, 1.0):
    value = metrics.aupro(masks, maps, fpr_limit=limit)
    assert 0.0 <= value <= 1.0
    assert value == pytest.approx(
      _mvtec_reference_aupro(masks, maps, limit), abs=1e-12
    )
  for bad in (0.0, -0.3, 1.5, float("nan"), True):
    with pytest.raises(ValueError, match=r"fpr_limit must be in \(0, 1\]"):
      metrics.aupro(masks, maps, fpr_limit=bad)


@SETTINGS
@hypothesis.given(masks_and_maps(), st.floats(0.01, 1.0))
def test_aupro_matches_mvtec_reference_and_threshold_loop(data, fpr_limit):
  masks, maps = data
  value = metrics.aupro(masks, maps, fpr_limit=fpr_limit)
  assert 0.0 <= value <= 1.0 + 1e-12
  assert value == pytest.approx(
    _mvtec_reference_aupro(masks, maps, fpr_limit), abs=1e-9
  )
  assert value == pytest.approx(_threshold_loop_aupro(masks, maps, fpr_limit), abs=1e-9)


def test_pro_curve_endpoints_and_monotone():
  fprs, pros = metrics.pro_curve(_HAND_MASK, _HAND_MAP)
  assert (fprs[0], pros[0]) == (0.0, 0.0)
  assert (fprs[-1], pros[-1]) == (1.0, 1.0)
  assert np.all(np.diff(fprs) >= 0) and np.all(np.diff(pros) >= 0)


# ---------------------------------------------------------------------------
# Validation errors
# ---------------------------------------------------------------------------


_PIXEL_FNS = {"pixel_auroc": metrics.pixel_auroc, "aupro": metrics.aupro}


@pytest.mark.parametrize("name", _PIXEL_FNS)
def test_pixel_level_validation_errors(name):
  fn = _PIXEL_FNS[name]
  masks = np.zeros((2, 4, 4), dtype=np.uint8)
  masks[1, 1:3, 1:3] = 1
  maps = np.linspace(0.0, 1.0, masks.size).reshape(masks.shape)
  with pytest.raises(ValueError, match=r"same shape.*\(2, 4, 4\).*\(2, 4, 3\)"):
    fn(masks, maps[..., :3])
  bad = maps.copy()
  bad[0, 0, :3] = np.nan
  with pytest.raises(ValueError, match=r"maps contains 3 NaN and 0 Inf"):
    fn(masks, bad)
  with pytest.raises(ValueError, match=r"maps are constant \(all = 0\.25\)"):
    fn(masks, np.full(masks.shape, 0.25))
  with pytest.raises(ValueError, match=r"masks must be binary.*255"):
    fn(masks * 255, maps)
  with pytest.raises(ValueError, match=r"masks contain only normals \(0\)"):
    fn(np.zeros_like(masks), maps)
  with pytest.raises(ValueError, match=r"masks contain only anomalies \(1\)"):
    fn(np.ones_like(masks), maps)


def test_aupro_requires_image_stack():
  masks = np.array([[0, 1], [0, 0]])
  with pytest.raises(ValueError, match=r"3-dimensional"):
    metrics.aupro(masks, np.array([[0.0, 1.0], [0.2, 0.3]]))
