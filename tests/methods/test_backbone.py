"""Tests of `methods.backbone`: the frozen pretrained feature extractor."""

import logging
import re

import numpy as np
import pytest

from ganad_jax import configs
from ganad_jax import methods
from ganad_jax import pretrained
from ganad_jax.methods import backbone
import helpers

# The tests read backbone weights: each converts them into a fresh cache.
pytestmark = pytest.mark.usefixtures("weights_cache")
_normalizer = backbone._normalizer  # pylint: disable=protected-access


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


def test_normalisation_is_stated_or_a_logged_default_and_recorded(backbone_weights, caplog):
  cfg = helpers.pretrained_config("padim", backbone_weights, name="resnet18").pretrained
  x = helpers.smooth_images(2)  # The project's images, in [-1, 1].
  with caplog.at_level(logging.WARNING):
    default = backbone.load(cfg)
  assert default.record["normalization"] == {"name": "imagenet", "mean": [0.485, 0.456, 0.406],
                                             "std": [0.229, 0.224, 0.225]}
  assert [r.getMessage() for r in caplog.records] == [
      f"pretrained.normalization is unset for {cfg.weights}: using 'imagenet', the default for "
      "resnet18 weights; set it if they expect another (e.g. 'inception' for AdvProp)."]
  np.testing.assert_allclose(_normalizer(default.record["normalization"])(x),
                             ((x + 1) / 2 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225],
                             rtol=0, atol=1e-6)  # float32 against float64.
  caplog.clear()
  for text, name in (("inception", "inception"), ("mean=0.5,0.5,0.5;std=0.5,0.5,0.5", "custom")):
    cfg.normalization = text
    with caplog.at_level(logging.WARNING):
      net = backbone.load(cfg)
    assert net.record == dict(default.record, normalization={
        "name": name, "mean": [0.5] * 3, "std": [0.5] * 3})
    # AdvProp's [-1, 1]: the images as they are (float32 rounding for the explicit form).
    np.testing.assert_allclose(_normalizer(net.record["normalization"])(x),
                               np.repeat(x, 3, axis=-1) if name == "custom" else x, atol=1e-6)
  assert not caplog.records  # Stated: no warning.
  assert methods.weights_record(helpers.pretrained_config(
      "padim", backbone_weights, name="resnet18", **{"pretrained.normalization": "inception"})
  ) == net.record | {"normalization": dict(net.record["normalization"], name="inception")}
  for text, why in (("advprop", "use one of 'imagenet', 'inception', 'lite' or "
                                "'mean=m1,m2,m3;std=s1,s2,s3'"),
                    ("mean=0.5;std=1", "explicit values are 'mean=m1,m2,m3;std=s1,s2,s3'")):
    cfg.normalization = text
    with pytest.raises(ValueError, match=re.escape(f"pretrained.normalization={text!r}: {why}")):
      backbone.load(cfg)


def test_package_weights_carry_their_normalisation(caplog):
  try:
    package = pretrained.package_weights("efficientnet-lite0")
  except pretrained.WeightsError as e:
    pytest.skip(str(e))
  cfg = configs.base_config("padim").pretrained  # Lite0, weights "" = the package.
  with caplog.at_level(logging.WARNING):
    record = backbone.weights_record(cfg)
    cfg.weights = str(package)  # The same file named: known by its content.
    assert backbone.weights_record(cfg) == record
  assert not caplog.records
  assert record == {"backbone": "efficientnet-lite0", "file": str(package),
                    "sha256": pretrained.sha256(package),
                    "normalization": {"name": "lite", "mean": [127 / 255] * 3,
                                      "std": [128 / 255] * 3}}
