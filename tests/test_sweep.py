"""Tests of `sweep`: settings merged into one table; a finished one reused only if the same."""

import os
import shutil

import pytest

from ganad_jax import sweep
from ganad_jax import train
from ganad_jax import workdir as workdir_lib
import helpers


def test_sweep_merges_runs_into_one_table_and_reuses_them(ae_ensemble_run, tmp_path):
  # Settings of the loop length: the fixture's programs, served by the cache.
  config = helpers.ae_ensemble_config(**{"train.early_stopping.eval_every": 0})
  axes = sweep.parse_axes(["train.num_steps=2,3"])
  assert axes == [("train.num_steps", (2, 3))]
  rows = sweep.run(config, axes, str(tmp_path))
  assert [(row["setting"], row["point"]) for row in rows] == [
      ("train.num_steps=2", {"optim.lr": 0.05}), ("train.num_steps=2", {"optim.lr": 0.01}),
      ("train.num_steps=3", {"optim.lr": 0.05}), ("train.num_steps=3", {"optim.lr": 0.01})]
  assert all(row["seeds"] == [0, 1] and row["metrics"]["score"]["auroc"]["n"] == 2
             for row in rows)
  text = sweep.write(rows, str(tmp_path), "title")
  assert "| setting | grid point | seeds | auroc |" in text
  assert "| train.num_steps=3 | optim.lr=0.01 | 0,1 |" in text
  path = tmp_path / "train.num_steps=2" / "results.json"
  stamp = os.stat(path).st_mtime_ns
  assert sweep.run(config, axes, str(tmp_path)) == rows  # Read back, not retrained.
  assert os.stat(path).st_mtime_ns == stamp
  with pytest.raises(ValueError, match="Sweep axis 'model.nzz' is not a config field"):
    sweep.run(config, sweep.parse_axes(["model.nzz=4"]), str(tmp_path))
  with pytest.raises(ValueError, match="'optim.lr' is also in config.ensemble.grid"):
    sweep.run(config, sweep.parse_axes(["optim.lr=0.1"]), str(tmp_path))


def test_sweep_refuses_a_finished_setting_of_another_config(trained, tmp_path, monkeypatch):
  root = str(tmp_path / "sweep")
  axes = [("train.num_steps", (6,))]
  shutil.copytree(trained, os.path.join(root, sweep.label(sweep.settings(axes)[0])))
  # Reused.
  assert sweep.run(helpers.tiny_config(), axes, root)[0]["setting"] == "train.num_steps=6"
  monkeypatch.setattr(train, "train_and_evaluate", lambda c, w: pytest.fail("trained"))
  with pytest.raises(workdir_lib.IncompatibleResultsError,
                     match=r"computed with data\.max_per_class=20; this run has "
                     r"data\.max_per_class=30\."):
    sweep.run(helpers.tiny_config(**{"data.max_per_class": 30}), axes, root)
