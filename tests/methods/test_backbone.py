"""Tests of `methods.backbone`: the frozen pretrained feature extractor."""

import numpy as np
import pytest

from ganad_jax import methods
from ganad_jax.methods import backbone
import helpers

# The tests read backbone weights: each converts them into a fresh cache.
pytestmark = pytest.mark.usefixtures("weights_cache")


def test_backbone_preprocessing_gray_equals_rgb_and_sizes(backbone_weights):
  net = backbone.load(helpers.pretrained_config("gaussian", backbone_weights).pretrained)
  assert net.input_size == 32 and net.stages["stage2"] == (8, 8, 24)
  x = helpers.smooth_images(2)
  gray = net.extract(net.variables, x)
  rgb = net.extract(net.variables, np.repeat(x, 3, axis=-1))
  for name in gray:  # Same program inputs up to the channel repeat: same numbers.
    np.testing.assert_allclose(gray[name], rgb[name], rtol=0, atol=1e-6)


def test_unknown_backbone_is_refused(backbone_weights):
  config = helpers.pretrained_config("gaussian", backbone_weights,
                                     **{"gaussian.features": "pretrained"})
  config.pretrained.backbone = "vgg16"
  with pytest.raises(ValueError, match=r"pretrained.backbone='vgg16' is not one of"):
    methods.make(config, helpers.PRETRAINED_SHAPE)
