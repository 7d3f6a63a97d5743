"""Tests of `methods.csflow`: features at 3 scales, the reference's loss, score and map, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganad_jax import methods
from ganad_jax.methods import backbone
import helpers

pytestmark = pytest.mark.usefixtures("weights_cache")


def _config(weights, **updates):
  return helpers.pretrained_config(
      "csflow", weights, **{"pretrained.input_size": 128, "csflow.hidden": 8,
                            "csflow.kernels": (3, 5), **updates})


def test_features_scores_and_maps_follow_the_reference(backbone_weights):
  config = _config(backbone_weights)
  method = methods.make(config, helpers.PRETRAINED_SHAPE)
  x = helpers.smooth_images(6)
  state = jax.jit(method.init)(jax.random.key(0), x[:2])
  # Features: the image at 128 px, then nearest-downscaled to 64 and 32, each through Lite0.
  big = jax.image.resize(jnp.asarray(x), (6, 128, 128, 1), "linear", antialias=True)
  feats = []
  for size in (128, 64, 32):
    config.pretrained.input_size = size
    net = backbone.load(config.pretrained)
    small = jax.image.resize(big, (6, size, size, 1), "nearest")
    feats.append(np.asarray(jax.jit(net.extract)(net.variables, small)["stage6"]))
  assert [f.shape[1:3] for f in feats] == [(4, 4), (2, 2), (1, 1)]
  embedded = jax.jit(method.embed)(state, x)
  for got, want in zip(embedded, feats):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  # At init every gamma is 0: the flow is a permutation of the features, so the
  # score is the mean of f^2 / 2 over the 3 scales and the map that of f^2 at the first.
  score = jax.jit(method.score)(state, x, jax.random.key(0))
  flat = np.concatenate([f.reshape(6, -1) for f in feats], axis=1)
  np.testing.assert_allclose(score["score"], np.mean(flat**2 / 2, axis=1), rtol=1e-4)
  expected_map = jax.image.resize(np.mean(feats[0]**2, axis=-1), (6, 32, 32), "linear")
  np.testing.assert_allclose(score["map"], expected_map, rtol=1e-4)
  # Training lowers the reference's loss on these normals.
  step = jax.jit(method.train_step)
  losses = []
  for i in range(6):
    state, metrics = step(state, embedded, jax.random.key(i))
    losses.append(float(metrics["loss"]))
  assert np.all(np.isfinite(losses)) and losses[-1] < losses[0], losses
  assert int(state["step"]) == 6


@pytest.mark.parametrize("updates,shape,match", [
    ({"pretrained.input_size": 96}, (32, 32, 1),
     r"pretrained.input_size=96: the smallest of 3 scales would be 24 px"),
    ({"csflow.layer": "stage9"}, (32, 32, 1), r"csflow.layer='stage9' is not among the stages"),
    ({}, (10,), r"csflow needs images \(H, W, 1 or 3\); got inputs of shape \(10,\)"),
])
def test_bad_settings_are_refused_by_name(backbone_weights, updates, shape, match):
  with pytest.raises(ValueError, match=match):
    methods.make(_config(backbone_weights, **updates), shape)


# An ensemble of a method with `embed` (its step embeds each batch) is trained and
# scored by tests/methods/test_flows_methods.py (FastFlow) and lowered for csflow
# by tests/test_accelerator_lowering.py (the "distributed" variant).
