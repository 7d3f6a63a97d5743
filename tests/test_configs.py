"""The config package: typed config-file arguments, the dotted setter, every config file."""

import glob
import importlib.util
import os

import pytest

from ganad_jax import configs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_FILES = sorted(os.path.basename(p) for p in glob.glob(os.path.join(REPO, "configs", "*.py"))
                      if not p.endswith("__init__.py"))


def _load(name):
  spec = importlib.util.spec_from_file_location(name[:-3], os.path.join(REPO, "configs", name))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_parse_arg_types_values_by_their_defaults():
  args = configs.parse_arg("digit=3,smoke=true,lr=1e-3,path=/a/b=c", digit=0, smoke=False,
                           lr=0.1, path="")
  assert (args.digit, args.smoke, args.lr, args.path) == (3, True, 1e-3, "/a/b=c")
  assert configs.parse_arg(None, digit=7).digit == 7
  assert configs.parse_arg("", digit=7).digit == 7
  assert configs.parse_arg("smoke=False", smoke=True).smoke is False


@pytest.mark.parametrize("arg,match", [
    ("digit=x", r"digit='x' is not of type int"),
    ("smoke=maybe", r"smoke='maybe' is not of type bool"),
    ("seed=1", r"'seed=1' .* not key=value with a known key; keys taken .*digit=0, smoke=False"),
    ("3", r"'3' .* not key=value"),
    ("digit=1,digit=2", r"sets 'digit' twice"),
])
def test_parse_arg_errors_name_the_pair(arg, match):
  with pytest.raises(ValueError, match=match):
    configs.parse_arg(arg, digit=0, smoke=False)


def test_set_field_sets_and_checks():
  config = configs.base_config()
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


@pytest.mark.parametrize("name", CONFIG_FILES)
def test_every_config_file_takes_key_value_arguments(name):
  module = _load(name)
  config = module.get_config(None)
  configs.validate(config)
  assert module.get_config("").to_dict() == config.to_dict()
  with pytest.raises(ValueError, match="not key=value with a known key"):
    module.get_config("no_such_key=1")


def test_config_file_arguments_reach_their_fields():
  assert _load("anogan_digits.py").get_config("digit=3").data.class_index == 3
  assert _load("vae_digits.py").get_config("digit=4").data.class_index == 4
  assert _load("anogan_magnetic_tile.py").get_config("path=/x/screw").data.path == "/x/screw"
  assert _load("gaussian_digits.py").get_config("workdir=/tmp/w").gaussian.workdir == "/tmp/w"
  assert _load("test.py").get_config("method=vae").method == "vae"
  smoke = _load("ablation_ganomaly_wcon.py").get_config("digit=3,smoke=true")
  assert smoke.data.class_index == 3 and smoke.train.num_steps == 8
