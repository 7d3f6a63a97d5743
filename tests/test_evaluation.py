"""Tests of `evaluation`: non-finite scores refused, the resumable score cache, per-kind metrics."""

from __future__ import annotations

import glob
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganad_jax import data
from ganad_jax import evaluation
from ganad_jax import metrics
from ganad_jax import train
from ganad_jax import workdir as workdir_lib
from ganad_jax.data import splits as splits_lib
import harness
import helpers


def _evaluate_command(workdir, scores_out):
  return harness.script("evaluate.py", f"--workdir={workdir}", "--split=test",
                        f"--scores_out={scores_out}")


def test_killed_latent_search_resumes_from_finished_batches(tmp_path, shared_compilation_cache):
  """SIGKILL an AnoGAN evaluation after some batches: scoring again reuses them, same scores.

  The killed evaluation is experiments/evaluate.py's; the reference and the
  resumed scoring are its scoring of the test split (`Scorer.members`, the
  cache of `evaluate.py`'s), in this process.
  """
  workdir = str(tmp_path / "anogan")
  config = helpers.long_config("anogan", **{"train.num_steps": 2, "eval.batch_size": 8,
                                            "anogan.search.steps": 30})
  splits = data.load(config.data, config.seed)
  train.train(config, workdir, splits)  # Checkpoint, no scoring.
  trained = workdir_lib.restore(workdir, splits.train.x.shape[1:])
  (reference,) = trained.scorer.members(trained.state, splits.test.x)  # No cache.

  cache = os.path.join(workdir, "score_cache", "test")
  harness.kill_when(_evaluate_command(workdir, tmp_path / "killed.npz"),
                    harness.script_env(shared_compilation_cache), tmp_path / "killed.log",
                    lambda: len(glob.glob(os.path.join(cache, "batch_*.npz"))) >= 2)
  finished = {p: os.stat(p).st_mtime_ns for p in glob.glob(os.path.join(cache, "batch_*.npz"))}
  num_batches = -(-len(splits.test.x) // 8)
  assert 2 <= len(finished) < num_batches

  (resumed,) = trained.scorer.members(trained.state, splits.test.x, cache_dir=cache)
  assert {p: os.stat(p).st_mtime_ns for p in finished} == finished  # Reused, not recomputed.
  assert resumed.keys() == reference.keys()
  for name in reference:
    np.testing.assert_array_equal(resumed[name], reference[name], err_msg=name)


def test_scoring_refuses_nonfinite_inputs_and_outputs(long_run):
  trained = workdir_lib.restore(long_run, helpers.SHAPE)
  method, state, key = trained.method, trained.state, trained.score_key
  score = jax.jit(method.score)
  x = np.zeros((5, *helpers.SHAPE), np.float32)
  x[2, 3, 4, 0] = np.nan
  x[4, 0, 0, 0] = np.inf
  with pytest.raises(ValueError, match=r"^Refusing to score inputs with 2 NaN/Inf values"):
    evaluation.score_split(score, state, x, key, 4)
  diverged = dict(state, params=jax.tree.map(lambda p: p * jnp.inf, state["params"]))
  with pytest.raises(FloatingPointError, match=r"non-finite values of 'score'.*No results"):
    evaluation.score_split(score, diverged, np.zeros((5, *helpers.SHAPE), np.float32), key, 4)


def test_evaluate_reports_auroc_and_pixel_auroc_per_kind():
  """Each kind is scored against the test normals alone, image and pixel level."""
  rng = np.random.default_rng(0)
  kinds = np.array(['good'] * 4 + ['crack'] * 3 + ['hole'] * 3)
  y = (kinds != 'good').astype(np.int32)
  masks = np.zeros((10, 4, 4), np.float32)
  masks[4:, 1:3, 1:3] = 1.0
  maps = rng.uniform(size=(10, 4, 4)).astype(np.float32)
  maps[4:7] += masks[4:7]  # Cracks light up where their masks are; holes do not.
  scores = maps.max(axis=(1, 2))
  test = splits_lib.Split(x=np.zeros((10, 4, 4, 1), np.float32), y=y, kinds=kinds, masks=masks)
  out = {'score': scores, 'map': maps}
  results = evaluation.evaluate(test, out, {'score': scores[:4]}, 0.9)
  for kind, rows in (('crack', slice(0, 7)), ('hole', np.r_[0:4, 7:10])):
    assert results['auroc_per_kind'][kind] == pytest.approx(
        metrics.auroc(y[rows], scores[rows]), abs=1e-12)
    assert results['pixel_auroc_per_kind'][kind] == pytest.approx(
        metrics.pixel_auroc(masks[rows], maps[rows]), abs=1e-12)
  assert results['pixel_auroc_per_kind']['crack'] == 1.0
