"""Tests of the image-level metrics of ganad_jax.metrics (auroc, auprc, f1_max, thresholds)."""

from __future__ import annotations

import functools
import itertools

import hypothesis
import numpy as np
import pytest
from hypothesis import strategies as st
from sklearn import metrics as sk_metrics

from ganad_jax import metrics

SETTINGS = hypothesis.settings(max_examples=50, deadline=None)


# ---------------------------------------------------------------------------
# Oracles (independent, deliberately naive implementations)
# ---------------------------------------------------------------------------


def _pairwise_auroc(labels, scores):
  """P(score_anomaly > score_normal) + 0.5 P(tie), by enumerating all pairs."""
  pos = scores[labels == 1]
  neg = scores[labels == 0]
  wins = sum((p > n) + 0.5 * (p == n) for p, n in itertools.product(pos, neg))
  return wins / (len(pos) * len(neg))


def _brute_force_f1_max(labels, scores):
  """Best F1 over thresholds t in the scores with rule score >= t."""
  best = 0.0
  for t in np.unique(scores):
    pred = scores >= t
    tp = np.sum(pred & (labels == 1))
    if tp == 0:
      continue
    precision = tp / np.sum(pred)
    recall = tp / np.sum(labels == 1)
    best = max(best, 2 * precision * recall / (precision + recall))
  return best


# ---------------------------------------------------------------------------
# Hypothesis strategies
# ---------------------------------------------------------------------------


@st.composite
def labels_and_scores(draw, max_size=40, integer_scores=None):
  """1-D labels with both classes and non-constant scores (often tied)."""
  n = draw(st.integers(2, max_size))
  labels = np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
  labels[0], labels[1] = 0, 1
  if integer_scores is None:
    integer_scores = draw(st.booleans())
  if integer_scores:
    elements = st.integers(-20, 20)
  else:
    elements = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
  scores = np.array(
    draw(st.lists(elements, min_size=n, max_size=n)), dtype=np.float64
  )
  hypothesis.assume(np.unique(scores).size > 1)
  return labels, scores


# ---------------------------------------------------------------------------
# Image-level metrics
# ---------------------------------------------------------------------------


def test_auroc_auprc_agree_with_sklearn_on_random_data():
  rng = np.random.default_rng(0)
  for _ in range(5):
    labels = rng.integers(0, 2, size=500)
    scores = rng.normal(size=500) + 0.8 * labels
    scores[::7] = np.round(scores[::7], 1)  # some ties
    assert metrics.auroc(labels, scores) == pytest.approx(
      sk_metrics.roc_auc_score(labels, scores), abs=1e-12
    )
    assert metrics.auprc(labels, scores) == pytest.approx(
      sk_metrics.average_precision_score(labels, scores), abs=1e-12
    )


def test_f1_max_matches_brute_force_on_small_example():
  labels = np.array([0, 0, 1, 0, 1, 1, 0, 1, 0, 0])
  scores = np.array([0.1, 0.3, 0.35, 0.4, 0.8, 0.5, 0.5, 0.2, 0.05, 0.6])
  # By hand (rule score >= t, 4 anomalies): t=0.2 -> 8 predicted, tp=4,
  # F1=2/3; t=0.35 -> 6 predicted, tp=3, F1=0.6; t=0.5 -> tp=2 of 4, F1=0.5;
  # t=0.8 -> tp=1 of 1, F1=0.4; lower t only add normals. Maximum: 2/3.
  expected = _brute_force_f1_max(labels, scores)
  assert expected == pytest.approx(2 / 3)
  assert metrics.f1_max(labels, scores) == pytest.approx(expected, abs=1e-12)


@SETTINGS
@hypothesis.given(labels_and_scores())
def test_auroc_matches_sklearn_and_pairwise_count(data):
  labels, scores = data
  value = metrics.auroc(labels, scores)
  assert value == pytest.approx(sk_metrics.roc_auc_score(labels, scores), abs=1e-12)
  assert value == pytest.approx(_pairwise_auroc(labels, scores), abs=1e-12)


@SETTINGS
@hypothesis.given(labels_and_scores())
def test_f1_max_matches_brute_force(data):
  labels, scores = data
  assert metrics.f1_max(labels, scores) == pytest.approx(
    _brute_force_f1_max(labels, scores), abs=1e-12
  )


@SETTINGS
@hypothesis.given(
  labels_and_scores(integer_scores=True),
  st.sampled_from(["exp", "affine", "cube"]),
)
def test_ranking_metrics_invariant_under_strictly_monotone_transform(data, name):
  labels, scores = data  # integers in [-20, 20]: transforms stay injective
  transform = {
    "exp": lambda s: np.exp(s / 4.0),
    "affine": lambda s: 3.0 * s + 7.0,
    "cube": lambda s: s**3,
  }[name]
  transformed = transform(scores)
  for fn in (metrics.auroc, metrics.auprc, metrics.f1_max):
    assert fn(labels, transformed) == pytest.approx(fn(labels, scores), abs=1e-12)


@SETTINGS
@hypothesis.given(labels_and_scores())
def test_flipping_labels_gives_one_minus_auroc(data):
  # Ties count 1/2 for both orientations, so this holds exactly with ties.
  labels, scores = data
  assert metrics.auroc(1 - labels, scores) == pytest.approx(
    1.0 - metrics.auroc(labels, scores), abs=1e-12
  )


@SETTINGS
@hypothesis.given(labels_and_scores(), st.floats(1e-3, 10.0))
def test_perfect_separation_gives_one(data, gap):
  labels, scores = data
  scores = scores.copy()
  scores[labels == 1] = scores.max() + gap + scores[labels == 1] - scores.min()
  # sklearn integrates with np.trapezoid: 1.0 up to rounding (e.g. 1 - 1e-16).
  assert metrics.auroc(labels, scores) == pytest.approx(1.0, abs=1e-12)
  assert metrics.auprc(labels, scores) == pytest.approx(1.0)
  assert metrics.f1_max(labels, scores) == pytest.approx(1.0)
  assert metrics.auroc(labels, -scores) == pytest.approx(0.0, abs=1e-12)


def test_threshold_from_normals():
  rng = np.random.default_rng(1)
  normal_scores = rng.normal(size=10_000)
  thr = metrics.threshold_from_normals(normal_scores, 0.95)
  assert thr == pytest.approx(np.quantile(normal_scores, 0.95))
  assert np.mean(normal_scores > thr) == pytest.approx(0.05, abs=1e-3)
  assert metrics.threshold_from_normals(np.arange(11.0), 0.5) == 5.0


@pytest.mark.parametrize("quantile", [0.0, 1.0, -0.1, 1.5, float("nan"), True])
def test_threshold_from_normals_rejects_bad_quantile(quantile):
  with pytest.raises(ValueError, match=r"quantile must be in the open interval"):
    metrics.threshold_from_normals(np.arange(10.0), quantile)


def test_threshold_from_normals_rejects_nonfinite_and_empty():
  with pytest.raises(ValueError, match=r"scores contains 1 NaN and 1 Inf"):
    metrics.threshold_from_normals([0.0, np.nan, np.inf, 1.0], 0.9)
  with pytest.raises(ValueError, match=r"scores is empty"):
    metrics.threshold_from_normals([], 0.9)


def test_threshold_metrics_hand_computed():
  labels = np.array([0, 0, 0, 1, 1, 1])
  scores = np.array([0.1, 0.4, 0.6, 0.3, 0.7, 0.9])
  # > 0.5: indices 2 (normal), 4, 5 -> tp=2, fp=1, fn=1, tn=2.
  out = metrics.threshold_metrics(labels, scores, 0.5)
  assert out == pytest.approx(
    {"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "fpr": 1 / 3}
  )
  pred = scores > 0.5
  assert out["precision"] == pytest.approx(sk_metrics.precision_score(labels, pred))
  assert out["recall"] == pytest.approx(sk_metrics.recall_score(labels, pred))
  assert out["f1"] == pytest.approx(sk_metrics.f1_score(labels, pred))
  # A score equal to the threshold is *not* anomalous (strict >).
  out = metrics.threshold_metrics(labels, scores, 0.6)
  assert out == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "fpr": 0.0})
  # Nothing predicted anomalous: precision and F1 reported as 0.
  out = metrics.threshold_metrics(labels, scores, 5.0)
  assert out == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "fpr": 0.0}
  with pytest.raises(ValueError, match=r"threshold must be a finite"):
    metrics.threshold_metrics(labels, scores, float("nan"))


# ---------------------------------------------------------------------------
# Validation errors
# ---------------------------------------------------------------------------


_IMAGE_FNS = {
  "auroc": metrics.auroc,
  "auprc": metrics.auprc,
  "f1_max": metrics.f1_max,
  "threshold_metrics": functools.partial(metrics.threshold_metrics, threshold=0.5),
}
_RANKING_FNS = ["auroc", "auprc", "f1_max"]

_LABELS = np.array([0, 1, 0, 1, 1])
_SCORES = np.array([0.1, 0.9, 0.3, 0.7, 0.4])


@pytest.mark.parametrize("name", _IMAGE_FNS)
def test_image_level_validation_errors(name):
  fn = _IMAGE_FNS[name]
  with pytest.raises(ValueError, match=r"same shape.*\(5,\).*\(4,\)"):
    fn(_LABELS, _SCORES[:4])
  with pytest.raises(ValueError, match=r"1-dimensional"):
    fn(_LABELS[None], _SCORES[None])
  with pytest.raises(ValueError, match=r"scores contains 2 NaN and 0 Inf"):
    fn(_LABELS, np.array([np.nan, 0.9, np.nan, 0.7, 0.4]))
  with pytest.raises(ValueError, match=r"scores contains 0 NaN and 1 Inf"):
    fn(_LABELS, np.array([0.1, np.inf, 0.3, 0.7, 0.4]))
  with pytest.raises(ValueError, match=r"labels must be binary.*\[2\]"):
    fn(np.array([0, 1, 2, 1, 0]), _SCORES)
  with pytest.raises(ValueError, match=r"labels must be binary"):
    fn(np.array(["a", "b", "a", "b", "a"]), _SCORES)
  with pytest.raises(ValueError, match=r"scores must be a real-valued numeric"):
    fn(_LABELS, np.array(["a", "b", "a", "b", "a"]))
  with pytest.raises(
    ValueError,
    match=r"labels contain only normals \(0\); need both normal and anomalous",
  ):
    fn(np.zeros(5, dtype=int), _SCORES)
  with pytest.raises(ValueError, match=r"labels contain only anomalies \(1\)"):
    fn(np.ones(5, dtype=bool), _SCORES)
  with pytest.raises(ValueError, match=r"empty"):
    fn(np.array([], dtype=int), np.array([]))


@pytest.mark.parametrize("name", _RANKING_FNS)
def test_ranking_metrics_reject_constant_scores(name):
  with pytest.raises(
    ValueError, match=r"scores are constant \(all = 0\.5\); .*undefined/meaningless"
  ):
    _IMAGE_FNS[name](_LABELS, np.full(5, 0.5))


def test_threshold_metrics_accepts_constant_scores():
  out = metrics.threshold_metrics(_LABELS, np.full(5, 0.5), threshold=0.0)
  assert out == pytest.approx({"precision": 0.6, "recall": 1.0, "f1": 0.75, "fpr": 1.0})

