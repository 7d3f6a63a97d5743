"""Tests of ganad_jax.metrics.standard_metrics: every metric of one score, consistent inputs."""

from __future__ import annotations

import numpy as np
import pytest

from ganad_jax import metrics


def _one_run():
  rng = np.random.default_rng(6)
  labels = np.array([0, 0, 0, 1, 1, 1, 0, 1])
  scores = rng.random(8) + labels
  masks = np.zeros((8, 8, 8), dtype=np.uint8)
  masks[3, 1:3, 1:4] = 1
  masks[4, 5:7, 5:7] = 1
  masks[7, 0, 0] = 1
  maps = rng.random((8, 8, 8)) + 0.5 * masks
  return labels, scores, masks, maps


def test_standard_metrics_image_level_and_threshold():
  labels, scores, _, _ = _one_run()
  out = metrics.standard_metrics(labels, scores, threshold=1.0)
  assert set(out) == {
    "auroc", "auprc", "f1_max",
    "precision@thr", "recall@thr", "f1@thr", "fpr@thr",
  }  # fmt: skip
  assert out["auroc"] == metrics.auroc(labels, scores)
  assert out["auprc"] == metrics.auprc(labels, scores)
  assert out["f1_max"] == metrics.f1_max(labels, scores)
  assert out["recall@thr"] == metrics.threshold_metrics(labels, scores, 1.0)["recall"]
  assert set(metrics.standard_metrics(labels, scores)) == {"auroc", "auprc", "f1_max"}


def test_standard_metrics_pixel_level():
  labels, scores, masks, maps = _one_run()
  out = metrics.standard_metrics(labels, scores, masks=masks, maps=maps)
  assert out["pixel_auroc"] == metrics.pixel_auroc(masks, maps)
  assert out["aupro"] == metrics.aupro(masks, maps)
  out = metrics.standard_metrics(labels, scores, masks=masks, maps=maps, aupro_fpr_limit=1.0)
  assert out["aupro"] == metrics.aupro(masks, maps, fpr_limit=1.0)
  # No defect pixel at all: the pixel metrics are absent, not faked.
  out = metrics.standard_metrics(labels, scores, masks=np.zeros_like(masks), maps=maps)
  assert set(out) == {"auroc", "auprc", "f1_max"}


def test_standard_metrics_rejects_inconsistent_pixel_inputs():
  labels, scores, masks, maps = _one_run()
  with pytest.raises(ValueError, match=r"masks and maps must be given together"):
    metrics.standard_metrics(labels, scores, masks=masks)
  with pytest.raises(ValueError, match=r"masks and maps must have the same shape"):
    metrics.standard_metrics(labels, scores, masks=masks, maps=maps[:, :4])
  with pytest.raises(ValueError, match=r"one mask per image"):
    metrics.standard_metrics(labels, scores, masks=masks[:5], maps=maps[:5])
  bad_masks = masks.copy()
  bad_masks[0, 0, 0] = 1  # image 0 is labelled normal
  with pytest.raises(ValueError, match=r"defect pixels in images labelled normal"):
    metrics.standard_metrics(labels, scores, masks=bad_masks, maps=maps)

