"""Tests of `benchmark`: a finished run is reused only when made with the same config."""

import shutil

import pytest

from ganad_jax import benchmark
from ganad_jax import train
from ganad_jax import workdir as workdir_lib
import helpers


def test_benchmark_refuses_a_finished_run_of_another_config(trained, tmp_path, monkeypatch):
  """The issue's command twice, the second with other steps and image size: refused by name."""
  root = str(tmp_path / "bench")
  shutil.copytree(trained, benchmark.run_dir(root, "ae", "0", 0))
  calls = []
  monkeypatch.setattr(train, "train_and_evaluate", lambda c, w: calls.append(w))
  before = helpers.snapshot(root)
  other = helpers.tiny_config(**{"train.num_steps": 300, "data.image_size": 32})
  with pytest.raises(workdir_lib.IncompatibleResultsError,
                     match=r"^.*/ae/0/seed0/results\.json was computed with data\.image_size=16, "
                     r"train\.num_steps=6; this run has data\.image_size=32, "
                     r"train\.num_steps=300\. Use another --workdir, or delete .*/ae/0/seed0 to "
                     r"run it again \(or pass --overwrite\)\.$"):
    # Seed 1 comes first and is not done: every run is checked before any trains.
    benchmark.run_grid(other, ["ae"], [0], [1, 0], root)
  assert not calls
  assert helpers.snapshot(root) == before


def test_benchmark_reuses_a_run_that_differs_in_result_neutral_fields(trained, tmp_path,
                                                                      monkeypatch):
  root = str(tmp_path / "bench")
  shutil.copytree(trained, benchmark.run_dir(root, "ae", "0", 0))
  monkeypatch.setattr(train, "train_and_evaluate",
                      lambda c, w: pytest.fail(f"retrained {w} instead of reusing it"))
  neutral = helpers.tiny_config(**{"train.log_every": 1, "train.checkpoint_every": 2,
                                   "mesh.devices": 1, "eval.batch_size": 32,
                                   "conv_lowering": "xla", "ensemble.batching": "unroll"})
  rows = benchmark.run_grid(neutral, ["ae"], [0], [0], root)
  assert rows[0]["metrics"] == helpers.read_results(trained)["metrics"]["score"]


def test_benchmark_refuses_a_length_or_threshold_change(trained, tmp_path):
  """Resume-neutral is not result-neutral: the run's length and threshold change its results."""
  root = str(tmp_path / "bench")
  shutil.copytree(trained, benchmark.run_dir(root, "ae", "0", 0))
  with pytest.raises(workdir_lib.IncompatibleResultsError,
                     match=r"computed with eval\.threshold_quantile=0\.95, train\.num_steps=6; "
                     r"this run has eval\.threshold_quantile=0\.9, train\.num_steps=9\."):
    benchmark.run_grid(
        helpers.tiny_config(**{"train.num_steps": 9, "eval.threshold_quantile": 0.9}),
        ["ae"], [0], [0], root)


def test_benchmark_overwrite_reruns_a_run_of_another_config(trained, tmp_path):
  root = str(tmp_path / "bench")
  workdir = benchmark.run_dir(root, "ae", "0", 0)
  shutil.copytree(trained, workdir)
  rows = benchmark.run_grid(helpers.tiny_config(**{"train.num_steps": 4}), ["ae"], [0], [0], root,
                            overwrite=True)
  results = helpers.read_results(workdir)
  assert results["steps"] == 4 and results["config"]["train"]["num_steps"] == 4
  assert rows[0]["metrics"] == results["metrics"]["score"]
