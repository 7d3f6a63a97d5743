"""Tests of `configs.dotted`: setting one field by its dotted name, checked."""

import pytest

from ganad_jax import configs


def test_set_field_sets_and_checks():
  config = configs.base_config("anogan")
  configs.set_field(config, "anogan.search.steps", 7, "Test")
  configs.set_field(config, "model.mlp_widths", [8, 4], "Test")  # A list becomes a tuple.
  configs.set_field(config, "optim.lr", 1, "Test")  # An int fits a float field.
  assert config.anogan.search.steps == 7 and config.model.mlp_widths == (8, 4)
  assert config.optim.lr == 1.0
  with pytest.raises(ValueError, match=r"^Test 'train.num_stepz' is not a config field\. Did you "
                                       r"mean train\.num_steps.*no field 'num_stepz' in section "
                                       r"train; fields there: batch_size"):
    configs.set_field(config, "train.num_stepz", 1, "Test")
  with pytest.raises(ValueError, match=r"no section 'trian' in the config; sections there: anogan"):
    configs.set_field(config, "trian.num_steps", 1, "Test")
  with pytest.raises(ValueError, match=r"'anogan.search' is a config section, not a field"):
    configs.set_field(config, "anogan.search", 1, "Test")
  with pytest.raises(ValueError, match=r"value 'x' of 'optim.lr' does not fit the field \(float\)"):
    configs.set_field(config, "optim.lr", "x", "Test")
