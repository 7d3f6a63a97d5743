"""Tests of `methods.differnet`: rotated views, pooled multi-scale features, score and gradient map."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganad_jax import methods
from ganad_jax.methods import differnet
import helpers

pytestmark = pytest.mark.usefixtures("weights_cache")


def _config(weights, **updates):
  return helpers.pretrained_config(
      "differnet", weights, **{"pretrained.input_size": 128, "differnet.hidden": 16,
                               "differnet.blocks": 2, "differnet.n_views": 4,
                               "differnet.n_transforms": 2, **updates})


def test_rotation_is_torchvisions_quarter_turn_and_fills_black():
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 6, 6, 1)), jnp.float32)
  # 90 degrees counter-clockwise, as torchvision's rotate(x, 90): np.rot90 on (H, W).
  np.testing.assert_allclose(differnet.rotate(x, jnp.float32(90.0)), np.rot90(x, 1, axes=(1, 2)),
                             atol=1e-6)
  corners = differnet.rotate(x, jnp.float32(45.0))[:, 0, 0, 0]
  np.testing.assert_array_equal(corners, -1.0)


def test_views_scores_training_and_gradient_map(backbone_weights):
  # Stage 3: through the random test weights' 7 stages the features, and so
  # the gradient map, would vanish below float32's range.
  config = _config(backbone_weights, **{"differnet.layer": "stage3"})
  method = methods.make(config, helpers.PRETRAINED_SHAPE)
  x = helpers.smooth_images(6)
  state = jax.jit(method.init)(jax.random.key(0), x[:2])
  feats = jax.jit(method.embed)(state, x)
  assert feats.shape == (6, 4, 3 * 40)  # 4 views, Lite0's stage 3 pooled at 3 scales.
  # View k of image i is image i rotated by 90 k degrees: its features are those of that image.
  turned = jax.jit(method.embed)(state, np.rot90(x, 1, axes=(1, 2)).copy())
  np.testing.assert_allclose(turned[:, 0], feats[:, 1], rtol=1e-4, atol=1e-5)
  step = jax.jit(method.train_step)
  losses = []
  for i in range(6):
    state, metrics = step(state, feats, jax.random.key(i))
    losses.append(float(metrics["loss"]))
  assert np.all(np.isfinite(losses)) and losses[-1] < losses[0], losses
  out = jax.jit(method.score)(state, x, jax.random.key(0))
  assert out["score"].shape == (6,) and out["map"].shape == (6, 32, 32)
  assert np.all(np.asarray(out["map"]) >= 0) and float(jnp.max(out["map"])) > 0
  # The score is the mean of z^2 over the image's views and z's dimensions.
  z, _ = differnet.glow.GlowFlow(2, 3.0, 16).apply({"params": state["params"]},
                                                   feats.reshape(24, -1))
  np.testing.assert_allclose(out["score"], np.mean(np.square(z).reshape(6, -1), axis=1),
                             rtol=1e-5)
  # An image's map depends on that image only.
  other = jax.jit(method.score)(state, np.concatenate([x[:3], x[:3]]), jax.random.key(0))
  np.testing.assert_allclose(other["map"][:3], out["map"][:3], rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("updates,match", [
    ({"differnet.map": "heat"}, r"differnet.map must be one of \('gradient', 'none'\)"),
    ({"differnet.layer": "stage9"}, r"differnet.layer='stage9' is not among the stages"),
])
def test_bad_settings_are_refused_by_name(backbone_weights, updates, match):
  with pytest.raises(ValueError, match=match):
    methods.make(_config(backbone_weights, **updates), helpers.PRETRAINED_SHAPE)
