"""Tests of `workdir`: restoring single and ensemble workdirs, and reusing finished results."""

import json
import os

import jax
import numpy as np
import pytest

from ganad_jax import ensemble
from ganad_jax import train
from ganad_jax import workdir as workdir_lib
from configs import test as test_config
import helpers


def test_scoring_a_workdir_checks_the_model_only(trained):
  """workdir.restore (experiments/evaluate.py) may point the same config at another data path."""
  config = workdir_lib.load_config(trained)
  config.data.path = "/elsewhere"
  assert workdir_lib.restore(trained, helpers.SHAPE, config=config).step == 6


def test_finished_run_without_config_in_results_falls_back_to_config_json(trained, copy_of):
  """results.json written before it recorded its config: config.json is compared."""
  workdir = copy_of(trained)
  results = helpers.read_results(workdir)
  del results["config"]
  with open(os.path.join(workdir, "results.json"), "w", encoding="utf-8") as f:
    json.dump(results, f)
  assert workdir_lib.finished_results(workdir, helpers.tiny_config()) == results
  with pytest.raises(workdir_lib.IncompatibleResultsError,
                     match=r"^.*/copy/config\.json was computed with seed=0; this run has seed=2"):
    workdir_lib.finished_results(workdir, helpers.tiny_config(seed=2))


def test_an_old_workdir_with_every_methods_sections_is_reused_and_restored(trained, copy_of):
  """config.json / results.json written when a config held every method's sections."""
  workdir = copy_of(trained)
  with open(os.path.join(os.path.dirname(__file__), "configs", "old_layout", "ssim_ae.json"),
            encoding="utf-8") as f:
    others = {k: v for k, v in json.load(f).items() if k not in ("method", "ssim")}
  assert {"padim", "pretrained", "anogan"} <= set(others)
  results = helpers.read_results(workdir)
  results["config"] = {**results["config"], **others}
  with open(os.path.join(workdir, "results.json"), "w", encoding="utf-8") as f:
    json.dump(results, f)
  with open(os.path.join(workdir, "config.json"), "w", encoding="utf-8") as f:
    json.dump(results["config"], f)
  assert workdir_lib.finished_results(workdir, helpers.tiny_config()) == results
  config = workdir_lib.load_config(workdir)
  assert config.to_dict() == helpers.tiny_config().to_dict()
  assert workdir_lib.restore(workdir, helpers.SHAPE).step == 6
  with pytest.raises(workdir_lib.IncompatibleResultsError, match=r"seed=0; this run has seed=2"):
    workdir_lib.finished_results(workdir, helpers.tiny_config(seed=2))


def test_restore_all_members_member_k_or_refuse(ensemble_workdir):
  workdir, _ = ensemble_workdir
  every = workdir_lib.restore(workdir, (16, 16, 1))
  assert every.stacked and every.members.size == 4 and every.member is None
  assert jax.tree.leaves(every.state)[0].shape[0] == 4
  two = workdir_lib.restore(workdir, (16, 16, 1), member=2)
  assert not two.stacked and two.member == 2
  assert (two.config.seed, two.config.optim.lr, two.config.ensemble.seeds) == (0, 2e-2, ())
  jax.tree.map(np.testing.assert_array_equal, two.state, ensemble.member_state(every.state, 2))
  with pytest.raises(ValueError, match=(
      rf"^workdir '{workdir}' holds an ensemble of 4 members \(0: seed 0, optim.lr=0.0002; "
      r"1: seed 1, optim.lr=0.0002; 2: seed 0, optim.lr=0.02; and 1 more\); choose one with "
      r"--member=k \(0 <= k < 4\)\.$")):
    workdir_lib.restore(workdir, (16, 16, 1), pick_with="--member=k")


def test_restore_refuses_a_member_of_a_single_run(tmp_path):
  workdir = str(tmp_path / "single")
  train.train_and_evaluate(test_config.get_config(), workdir)
  assert workdir_lib.restore(workdir, (16, 16, 1)).members is None
  with pytest.raises(ValueError, match=f"member=0: workdir '{workdir}' is a single run"):
    workdir_lib.restore(workdir, (16, 16, 1), member=0)
