"""Tests of `configs.patch`: the patch section's defaults and the checks of `configs.validate`."""

import pytest

from ganad_jax import configs
import helpers


def test_default_is_off():
  config = configs.base_config()
  assert config.patch.to_dict() == {"size": 0, "stride": 16, "image_score": "max_map",
                                    "sigma": 4.0}
  configs.validate(config)


def test_a_valid_patch_config_passes():
  configs.validate(helpers.tiny_config(**{"data.image_size": 32, "patch.size": 16,
                                          "patch.stride": 16, "patch.image_score": "mean_patches",
                                          "patch.sigma": 0.0}))


@pytest.mark.parametrize("overrides,match", [
    ({"patch.size": -1}, r"patch.size must be an int >= 0 \(0 = off\); got -1"),
    ({"patch.size": 64}, r"patch.size=64 is larger than the 32x32 images"),
    ({"patch.size": 16, "data.image_width": 8}, r"patch.size=16 is larger than the 32x8 images"),
    ({"patch.size": 16, "patch.stride": 0}, r"patch.stride must be an int from 1 to patch.size=16"),
    ({"patch.size": 16, "patch.stride": 17}, r"patch.stride must be .*; got 17"),
    ({"patch.size": 16, "patch.image_score": "max"}, r"patch.image_score must be one of"),
    ({"patch.size": 16, "patch.sigma": -1.0}, r"patch.sigma must be a finite number >= 0"),
    ({"patch.size": 16, "eval.paper_repro": True}, r"eval.paper_repro .* cannot join the patch"),
    ({"data.image_width": 48}, r"data.image_width=48 makes 32x48 images, but the nets take "
                               r"square ones: non-square images need the patch protocol"),
    ({"data.image_width": -2}, r"data.image_width must be an int >= 0"),
])
def test_bad_patch_fields_are_named(overrides, match):
  config = helpers.tiny_config(**{"data.image_size": 32, "patch.stride": 8, **overrides})
  with pytest.raises(ValueError, match=match):
    configs.validate(config)
