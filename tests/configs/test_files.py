"""Tests of `configs.files`: typed config-file arguments; every configs/*.py file takes them."""

import glob
import importlib.util
import os

import pytest

from ganad_jax import configs
import harness

CONFIG_FILES = sorted(os.path.basename(p)
                      for p in glob.glob(os.path.join(harness.REPO, "configs", "*.py"))
                      if not p.endswith("__init__.py"))


def _load(name):
  spec = importlib.util.spec_from_file_location(name[:-3],
                                                os.path.join(harness.REPO, "configs", name))
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
