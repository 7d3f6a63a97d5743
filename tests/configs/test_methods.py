"""Each method's config: its own sections only, registered by its module; old config.json read back.

tests/configs/old_layout/*.json are config.json files written by main before
a config held its own method's sections only (every method's sections then):
configs/test.py:method=<name>'s `to_dict()`. egbad.json also has
anogan.search.steps=7 (EGBAD reads `anogan.search`) and
anogan.feature_matching=True (AnoGAN's, which EGBAD does not read).
"""

import json
import os

import pytest

from ganad_jax import configs
from configs import test as test_config

OLD = os.path.join(os.path.dirname(__file__), "old_layout")
SHARED = {"data", "model", "optim", "train", "eval", "patch", "ensemble", "mesh"}
OWN = {"ae": set(), "ssim_ae": {"ssim"}, "anogan": {"anogan"}, "egbad": {"egbad", "anogan"},
       "vae": {"vae"}, "gaussian": {"gaussian", "pretrained"}, "padim": {"padim", "pretrained"},
       "patchcore": {"patchcore", "pretrained"},
       "ganomaly": {"ganomaly"}, "skip_ganomaly": {"skip_ganomaly"}, "fanogan": {"fanogan"},
       **{flow: {flow, "pretrained", "features"} for flow in ("fastflow", "cflow", "msflow")},
       "csflow": {"csflow", "pretrained", "features"},
       "differnet": {"differnet", "pretrained", "features"}}


def _old(name):
  with open(os.path.join(OLD, f"{name}.json"), encoding="utf-8") as f:
    return json.load(f)


def _sections(config):
  return {k for k, v in config.items() if isinstance(v, type(config))}


@pytest.mark.parametrize("method", sorted(OWN))
def test_a_config_holds_the_shared_sections_and_its_methods_only(method):
  assert set(configs.METHOD_NAMES) == set(OWN)
  config = configs.base_config(method)
  assert config.method == method and _sections(config) == SHARED | OWN[method]
  configs.validate(config)
  assert _sections(test_config.get_config(f"method={method}")) == SHARED | OWN[method]


def test_egbad_holds_the_latent_search_of_anogan_only():
  config = configs.base_config("egbad")
  assert set(config.anogan.keys()) == {"search"}
  assert config.anogan.search == configs.base_config("anogan").anogan.search
  assert configs.methods.owners("anogan.search.steps") == ["anogan", "egbad"]
  assert configs.is_foreign_field("anogan.feature_matching", "egbad")
  assert not configs.is_foreign_field("anogan.search.steps", "egbad")
  assert configs.is_foreign_field("pretrained.backbone", "ae")
  assert not configs.is_foreign_field("data.path", "ae")


def test_unknown_method_is_refused_by_name():
  with pytest.raises(ValueError, match=r"^Unknown method 'anogann' \(config.method\); choose "
                                       r"one of ae, anogan, cflow, csflow, differnet, egbad, "):
    configs.base_config("anogann")


def test_a_field_of_another_method_is_refused_naming_it():
  config = configs.base_config("ae")
  config.padim = configs.methods.padim.padim_config()  # What a config file could add.
  with pytest.raises(ValueError, match=r"^config.padim belongs to method padim, not to "
                                       r"config.method='ae'"):
    configs.validate(config)
  config = configs.base_config("egbad")
  config.anogan.feature_matching = True
  with pytest.raises(ValueError, match=r"^config.anogan.feature_matching belongs to method "
                                       r"anogan, not to config.method='egbad'"):
    configs.validate(config)
  config = configs.base_config("ae")
  config.train.num_stepz = 3  # A typo is still a typo.
  with pytest.raises(ValueError, match=r"^Unknown config field 'config.train.num_stepz'"):
    configs.validate(config)


def test_a_method_set_without_its_sections_is_refused():
  config = test_config.get_config("method=ae")
  config.method = "vae"
  with pytest.raises(ValueError, match=r"config.method='vae' reads the section config.vae, which "
                                       r"this config lacks.*configs.with_method"):
    configs.validate(config)
  configs.validate(configs.with_method(config, "vae"))


@pytest.mark.parametrize("field,value,message", [
    ("padim.eps", 0.0, r"^padim.eps=0.0 must be > 0: it is added to the covariance's diagonal"),
    ("padim.eps", -1e-3, r"^padim.eps=-0.001 must be > 0"),
    ("padim.channels", -1, r"^padim.channels=-1 must be >= 0"),
    ("padim.sigma", -1.0, r"^padim.sigma=-1.0 must be >= 0"),
    ("gaussian.max_features", 0, r"^gaussian.max_features=0 must be > 0"),
    ("gaussian.member", -2, r"^gaussian.member=-2 must be >= 0, or -1"),
    ("gaussian.features", "nope", r"^gaussian.features must be one of \("),
    ("gaussian.pool", "max", r"^gaussian.pool must be one of \("),
    ("anogan.search.init", "encoder", r"^AnoGAN has no encoder: set anogan.search.init"),
    ("anogan.search.lam", 2.0,
     r"^Invalid latent search config: anogan.search.lam must lie in \[0, 1\]; got 2.0\.$"),
    ("egbad.feature_weight", 1.5, r"^egbad.feature_weight must lie in \[0, 1\]; got 1.5\.$"),
    ("egbad.search_steps", -1, r"^egbad.search_steps must be >= 0 \(0 = off\); got -1\.$"),
])
def test_a_methods_check_names_the_field_and_value(field, value, message):
  config = configs.base_config(field.split(".")[0])
  configs.set_field(config, field, value, "Test")
  with pytest.raises(ValueError, match=message):
    configs.validate(config)


def test_egbad_checks_the_encoder_search_only_when_it_searches():
  config = configs.base_config("egbad")
  config.anogan.search.restarts = 0
  configs.validate(config)  # search_steps = 0: no search, nothing of it to check.
  config.egbad.search_steps = 3  # Started from the encoder: init="encoder" is EGBAD's own.
  with pytest.raises(ValueError, match=r"^Invalid latent search config: "
                                       r"anogan.search.restarts must be >= 1; got 0\.$"):
    configs.validate(config)
  config.anogan.search.restarts = 1
  configs.validate(config)


def test_with_method_keeps_the_sections_both_read():
  gaussian = configs.base_config("gaussian")
  gaussian.pretrained.input_size, gaussian.train.num_steps = 64, 9
  padim = configs.with_method(gaussian, "padim")
  assert padim.method == "padim" and _sections(padim) == SHARED | OWN["padim"]
  assert padim.pretrained.input_size == 64 and padim.train.num_steps == 9
  assert padim.padim == configs.base_config("padim").padim
  ae = configs.with_method(padim, "ae")
  assert _sections(ae) == SHARED and ae.train.num_steps == 9
  assert gaussian.method == "gaussian" and "gaussian" in gaussian  # Not changed.


@pytest.mark.parametrize("method", ["ssim_ae", "egbad", "gaussian"])
def test_an_old_config_json_with_every_section_reads_back_as_its_methods(method):
  old = _old(method)
  assert {"ssim", "anogan", "egbad", "vae", "gaussian", "padim", "pretrained", "ganomaly",
          "skip_ganomaly"} <= set(old)  # The old layout.
  config = configs.from_dict(old, "config.json")
  expected = test_config.get_config(f"method={method}")
  if method == "egbad":
    expected.anogan.search.steps = 7
  assert config.to_dict() == expected.to_dict()
  configs.validate(config)
  # What results.json and checkpoint records compare: equal for the same run.
  assert configs.run_record(config, ()) == configs.run_record(expected, ())


def test_an_unknown_field_of_an_old_config_json_is_still_refused():
  old = _old("ssim_ae")
  old["train"]["num_stepz"] = 3
  with pytest.raises(ValueError, match=r"^config.train.num_stepz in x/config.json is not a known "
                                       r"config field\.$"):
    configs.from_dict(old, "x/config.json")
