"""The one Scorer (`ganad_jax.scoring`): what training, restore, evaluate and Detector score with.

It gives what the method's own score gives, jitted plainly and run over padded
batches (`evaluation.score_split`), per member for an ensemble; and it takes
another score function of the method (paper_repro's train-mode BatchNorm).
"""

import jax
import numpy as np

from ganad_jax import data
from ganad_jax import evaluation
from ganad_jax import scoring
from ganad_jax import train
from ganad_jax import workdir as workdir_lib
import helpers


def test_scorer_equals_the_method_score_over_padded_batches(trained):
  restored = workdir_lib.restore(trained, helpers.SHAPE)
  x = data.load(restored.config.data, restored.config.seed).test.x
  outs = restored.scorer.members(restored.state, x)
  assert len(outs) == 1 and restored.scorer.batch_size == restored.config.eval.batch_size
  plain = evaluation.score_split(jax.jit(restored.method.score), restored.state, x,
                                 restored.score_key, restored.config.eval.batch_size)
  assert set(outs[0]) == set(plain)
  for name, values in plain.items():  # One device: the same program, the same numbers.
    np.testing.assert_array_equal(outs[0][name], values)


def test_an_ensemble_scores_per_member(ensemble_workdir):
  workdir, _ = ensemble_workdir
  every = workdir_lib.restore(workdir, helpers.SHAPE)
  x = data.load(every.config.data, every.config.seed).val.x[:8]
  outs = every.scorer.members(every.state, x)
  assert len(outs) == 4 and outs[0]["score"].shape == (8,)
  stacked = scoring.stack_members(outs)
  assert stacked["score"].shape == (8, 4)
  two = workdir_lib.restore(workdir, helpers.SHAPE, member=2)  # The single run it equals.
  np.testing.assert_allclose(two.scorer.members(two.state, x)[0]["score"], outs[2]["score"],
                             rtol=2e-5)


def test_another_score_function_of_the_method(tmp_path):
  """paper_repro's train-mode BatchNorm score through `Scorer.batch`: unpadded batches."""
  config = helpers.tiny_config("ganomaly", **{"train.num_steps": 1})
  splits = data.load(config.data, config.seed)
  run, state, _, _ = train.train(config, str(tmp_path / "run"), splits)
  paper_score = run.method.paper_score.score
  scorer = scoring.Scorer(run, config.eval.batch_size, score=paper_score)
  batch = splits.test.x[:5]  # A partial batch: the references never pad.
  got = scorer.batch(state, batch)["score"]
  want = jax.jit(paper_score)(state, batch, run.keys.score)["score"]
  np.testing.assert_allclose(got, want, rtol=1e-6)
  # Train-mode BatchNorm: a row's score depends on its batch-mates, unlike `score`'s.
  assert not np.allclose(scorer.batch(state, splits.test.x[:4])["score"], got[:4])
