"""Tests of `early_stopping`: the best state on the validation normals, kept and checked."""

import os
import shutil

import jax
import numpy as np
import pytest

from ganad_jax import checkpoints
from ganad_jax import data
from ganad_jax import evaluation
from ganad_jax import train
from ganad_jax import workdir as workdir_lib
from configs import test as test_config
import helpers


def test_early_stopping_keeps_the_best_state_on_validation_normals(tmp_path):
  config = test_config.get_config("method=ae")
  config.train.num_steps = 40
  config.train.early_stopping.eval_every = 2
  config.train.early_stopping.patience = 2
  config.optim.lr = 0.05  # Large enough that the validation score goes up again.
  workdir = str(tmp_path / "run")
  results = train.train_and_evaluate(config, workdir)
  best_step = results["best_step"]
  assert best_step % 2 == 0 and best_step <= results["steps"] <= 40
  assert results["stopped_early"]  # `patience` evaluations after the best one.
  assert results["steps"] == best_step + 2 * 2 < 40
  # The evaluated model is the best one, and its mean validation score is the recorded one.
  splits = data.load(config.data, config.seed)
  trained = workdir_lib.restore(workdir, splits.train.x.shape[1:], config=config)
  method, state, step, key = trained.method, trained.state, trained.step, trained.score_key
  assert step == best_step == int(state["step"])
  val = evaluation.score_split(jax.jit(method.score), state, splits.val.x, key,
                               config.eval.batch_size)
  np.testing.assert_allclose(val["score"].mean(), results["best_val_score"], rtol=1e-6)
  # A rerun of the finished run trains nothing more and reports the same.
  again = train.train_and_evaluate(config, workdir)
  assert again["metrics"] == results["metrics"] and again["best_step"] == best_step


def test_a_best_state_of_another_run_is_refused(tmp_path):
  """best/ left beside an empty checkpoints/ must not steer another run's early stopping."""
  early = {"train.early_stopping.eval_every": 3}
  first = str(tmp_path / "first")
  train.train_and_evaluate(helpers.tiny_config(**early), first)
  second = str(tmp_path / "second")
  shutil.copytree(os.path.join(first, "best"), os.path.join(second, "best"))
  with pytest.raises(checkpoints.IncompatibleCheckpointError,
                     match=r"^Checkpoint .*/second/best/\d+ was written for seed=0; this run has "
                     r"seed=1\."):
    train.train_and_evaluate(helpers.tiny_config(seed=1, **early), second)
  saved = os.path.join(second, "checkpoints")  # Refused before the first step, not at the end.
  assert not os.path.isdir(saved) or not [s for s in os.listdir(saved) if s.isdigit()]
