"""Tests of `methods.patchcore` and `methods.coreset`: coreset, search, score, memory, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganad_jax import methods
from ganad_jax import run_outputs
from ganad_jax.methods import backbone
from ganad_jax.methods import coreset
from ganad_jax.methods import patchcore
import helpers


def numpy_greedy(points, k, start):
  """Algorithm 1 written plainly: float64, each step's distances recomputed from scratch."""
  points = np.asarray(points, np.float64)
  chosen = [start]
  for _ in range(k - 1):
    d = np.min(((points[:, None] - points[chosen][None]) ** 2).sum(-1), axis=1)
    chosen.append(int(np.argmax(d)))
  return np.array(chosen)


def test_coreset_picks_the_farthest_points_and_equals_numpy():
  # Four far corners and a dense cluster at the centre: from the centre, the
  # greedy picks are the corners, farthest first.
  corners = np.array([[10.0, 10.0], [-9.0, -9.0], [10.0, -8.0], [-7.0, 10.0]], np.float32)
  cluster = np.random.default_rng(0).normal(scale=0.1, size=(20, 2)).astype(np.float32)
  points = np.concatenate([cluster, corners])
  indices, radius = coreset.greedy_coreset(points, 5, start=0)
  # Squared distances from ~(0, 0): 200, 162, 164, 149: (10, 10) first; then (10, -8) (164
  # from the centre, 324 from (10, 10)), (-9, -9) (162), (-7, 10) (149).
  np.testing.assert_array_equal(indices, [0, 20, 22, 21, 23])
  np.testing.assert_array_equal(indices, numpy_greedy(points, 5, 0))
  assert np.all(np.diff(radius) <= 0)  # The covering radius only shrinks.

  rng = np.random.default_rng(1)
  points = rng.normal(size=(500, 16)).astype(np.float32)
  for segments in (1, 7):  # Split into jitted calls, the same picks.
    indices, radius = coreset.greedy_coreset(points, 40, start=123, segments=segments)
    np.testing.assert_array_equal(indices, numpy_greedy(points, 40, 123))
  d = np.sqrt(((points[:, None] - points[indices][None]) ** 2).sum(-1)).min(axis=1)
  np.testing.assert_allclose(radius[-1], d.max(), rtol=1e-5)
  with pytest.raises(ValueError, match=r"greedy_coreset: k=501, start=0 for 500 points"):
    coreset.greedy_coreset(points, 501, start=0)


@pytest.mark.parametrize("chunk_bytes", [coreset.CHUNK_BYTES, 4 * 50 * 7])  # One chunk; 7 rows.
def test_nearest_equals_brute_force(chunk_bytes):
  rng = np.random.default_rng(2)
  queries = rng.normal(size=(101, 12)).astype(np.float32)
  bank = rng.normal(size=(50, 12)).astype(np.float32)
  dist, index = coreset.nearest(queries, bank, k=3, chunk_bytes=chunk_bytes)
  brute = np.sqrt(((queries[:, None].astype(np.float64) - bank[None]) ** 2).sum(-1))
  np.testing.assert_array_equal(index, np.argsort(brute, axis=1)[:, :3])
  np.testing.assert_allclose(dist, np.sort(brute, axis=1)[:, :3], rtol=1e-4, atol=1e-5)
  # Padding rows past `valid` are never returned.
  dist, index = coreset.nearest(queries, bank, k=1, valid=jnp.int32(20), chunk_bytes=chunk_bytes)
  np.testing.assert_array_equal(index[:, 0], np.argmin(brute[:, :20], axis=1))
  np.testing.assert_allclose(dist[:, 0], brute[:, :20].min(axis=1), rtol=1e-4, atol=1e-5)


def test_reweighting_formula_by_hand():
  # m_test = (0, 0); its nearest bank row m* = (3, 0) and m*'s neighbours (3, 4), (0, 1):
  # distances 3, 5, 1; w = 1 - e^3 / (e^3 + e^5 + e^1) = 0.8707..., s = w * s* with s* = 3.
  test_patch = jnp.array([[0.0, 0.0]])
  support = jnp.array([[[3.0, 0.0], [3.0, 4.0], [0.0, 1.0]]])
  s = patchcore.reweighted_score(test_patch, support, jnp.array([3.0]))
  e1, e3, e5 = np.exp(1.0), np.exp(3.0), np.exp(5.0)
  np.testing.assert_allclose(s, [(1 - e3 / (e1 + e3 + e5)) * 3.0], rtol=1e-6)
  np.testing.assert_allclose(patchcore.adaptive_pool_matrix(5, 2).T,
                             [[1 / 3, 1 / 3, 1 / 3, 0, 0], [0, 0, 1 / 3, 1 / 3, 1 / 3]])


@pytest.mark.usefixtures("weights_cache")
def test_memory_refused_before_any_feature_is_extracted(backbone_weights):
  config = helpers.pretrained_config("patchcore", backbone_weights,
                                     **{"patchcore.max_memory_mb": 1,
                                        "patchcore.bank_capacity": 64})
  method = methods.make(config, helpers.PRETRAINED_SHAPE)
  state = method.init(jax.random.key(0), helpers.smooth_images(2))

  class NoPixels:
    """1000 training images whose pixels must not be read: the refusal comes first."""
    shape = (1000, 32, 32, 1)

    def __len__(self):
      return 1000

    def __array__(self, *args, **kwargs):
      raise AssertionError("pixels read before the memory check")

  train_x = NoPixels()
  # Lite0 at 32: stage3 (40) + stage5 (112) on a 4x4 grid; 16000 patches x (152 + 128) x 4 B.
  with pytest.raises(ValueError, match=(
      r"patchcore fit: 16000 patches \(1000 images x 4x4\) of 152 channels need 17 MB, over "
      r"patchcore.max_memory_mb=1; lower pretrained.input_size")):
    method.fit(state, train_x)
  assert patchcore.fit_memory_bytes(1000, (4, 4), 152, 64, 9) == 16000 * 280 * 4 + 64 * 161 * 4
  config.patchcore.bank_capacity = 10**6
  with pytest.raises(ValueError, match=r"patchcore: a bank of patchcore.bank_capacity=1000000 "
                     r"rows of 152 channels needs 614 MB, over patchcore.max_memory_mb=1"):
    methods.make(config, helpers.PRETRAINED_SHAPE)


def numpy_features(config, x):
  """The locally aware patch features, written out: (N, h * w, D) float64."""
  net = backbone.load(config.pretrained)
  stages = jax.jit(net.extract)(net.variables, x)
  parts = []
  for name in ("layer2", "layer3"):
    s = np.pad(np.asarray(stages[name], np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)))
    h, w = s.shape[1] - 2, s.shape[2] - 2
    pooled = sum(s[:, i:i + h, j:j + w] for i in range(3) for j in range(3)) / 9.0
    parts.append(np.asarray(jax.image.resize(pooled, (len(x), 4, 4, pooled.shape[-1]), "linear")))
  e = np.concatenate(parts, axis=-1) @ patchcore.adaptive_pool_matrix(384, 96)
  return e.reshape(len(x), 16, 96)


@pytest.mark.usefixtures("weights_cache")
def test_fit_and_score_equal_a_numpy_computation(backbone_weights, monkeypatch):
  """Random-init ResNet-18 at 32 px: layer2 + layer3 (128 + 256 -> dim 96) on a 4x4 grid."""
  config = helpers.pretrained_config("patchcore", backbone_weights, name="resnet18",
                                     **{"patchcore.dim": 96, "patchcore.coreset_ratio": 0.25,
                                        "patchcore.bank_capacity": 200,
                                        "patchcore.sigma": 1.0, "patchcore.num_neighbors": 3})
  method = methods.make(config, helpers.PRETRAINED_SHAPE)
  train_x = helpers.smooth_images(40)
  state = method.init(jax.random.key(0), train_x[:2])
  lines = []
  monkeypatch.setattr(run_outputs, "PROGRESS_EVERY_S", 0.0)
  monkeypatch.setattr(run_outputs.logging, "info", lambda fmt, *a: lines.append(fmt % a))
  fitted = method.fit(state, train_x)
  assert int(fitted["rows"]) == 160  # int(0.25 x 40 images x 16 locations).
  assert any(l.startswith("patchcore fit: features of the training images: image 40/40")
             for l in lines), lines
  assert any(l.startswith("patchcore fit: greedy coreset: row 160/160") for l in lines), lines

  # The bank: 160 distinct training patches, zero padding after; each row's neighbours start
  # with itself.
  test_x = helpers.smooth_images(4, seed=3)
  test_x[0, 20:28, 4:12] = (np.indices((8, 8)).sum(0) % 2 * 2 - 1)[..., None]
  e = numpy_features(config, np.concatenate([train_x, test_x]))
  train_e, e = e[:40].reshape(-1, 96), e[40:]
  bank = np.asarray(fitted["bank"], np.float64)
  assert not bank[160:].any()
  bank = bank[:160]
  match = np.abs(bank[:, None] - train_e[None]).max(-1).argmin(1)
  np.testing.assert_allclose(bank, train_e[match], rtol=1e-4, atol=1e-5)
  assert len(np.unique(match)) == 160
  np.testing.assert_array_equal(np.asarray(fitted["neighbors"])[:160, 0], np.arange(160))

  # The scores, by brute force: s* the largest nearest-row distance, then eq. 7. Tolerance:
  # the search's |q|^2 - 2 q.m + |m|^2 in float32 loses digits when distances are small
  # against the norms (here ~0.3 %; anomalib's and faiss' search do the same).
  out = jax.jit(method.score)(fitted, test_x, jax.random.key(0))
  assert out["map"].shape == (4, 32, 32)
  dist = np.sqrt(((e[:, :, None] - bank[None, None]) ** 2).sum(-1))  # (4, 16, 160)
  worst = dist.min(-1).argmax(1)
  s_star = dist.min(-1).max(1)
  np.testing.assert_allclose(out["score_max"], s_star, rtol=5e-3)
  expected = []
  for n in range(4):
    m_star = dist[n, worst[n]].argmin()
    support = np.argsort(((bank - bank[m_star]) ** 2).sum(-1))[:3]
    d = dist[n, worst[n], support]
    expected.append((1 - np.exp(d[0]) / np.exp(d).sum()) * s_star[n])
  np.testing.assert_allclose(out["score"], expected, rtol=5e-3)
  assert np.all(np.isnan(np.asarray(method.score(state, test_x, None)["score"])))  # Unfitted.


@pytest.mark.usefixtures("weights_cache")
def test_bad_inputs_and_fields(backbone_weights):
  with pytest.raises(ValueError, match=r"patchcore needs images"):
    methods.make(helpers.pretrained_config("patchcore", backbone_weights), (30,))
  with pytest.raises(ValueError, match=r"patchcore.layers: 'layer9' not among the stages"):
    methods.make(helpers.pretrained_config("patchcore", backbone_weights, name="resnet18",
                                           **{"patchcore.layers": ("layer2", "layer9")}),
                 helpers.PRETRAINED_SHAPE)
  config = helpers.pretrained_config("patchcore", backbone_weights,
                                     **{"patchcore.bank_capacity": 10})
  method = methods.make(config, helpers.PRETRAINED_SHAPE)
  state = method.init(jax.random.key(0), helpers.smooth_images(2))
  with pytest.raises(ValueError, match=r"patchcore.coreset_ratio=0.1 of 320 patches is 32 rows; "
                     r"the bank needs between patchcore.num_neighbors=9 and "
                     r"patchcore.bank_capacity=10 rows: set the capacity to 32"):
    method.fit(state, helpers.smooth_images(20))
