"""The references' evaluation protocol: per-epoch test AUROC, train-mode BatchNorm, best epoch."""

import numpy as np
import pytest

from ganad_jax import methods
from ganad_jax import metrics
from ganad_jax import paper_repro
from ganad_jax import train
from ganad_jax.methods import base
from helpers import tiny_config

# configs/test.py's GANomaly with ~130 training normals: 8 steps per epoch of 16.
STEPS = 12


def test_is_epoch_end_marks_epoch_ends_and_the_last_step():
  ends = [s for s in range(1, 21) if paper_repro.is_epoch_end(s, 20, num_train=35, batch_size=8)]
  assert ends == [4, 8, 12, 16, 20]
  assert [s for s in range(1, 6) if paper_repro.is_epoch_end(s, 5, 35, 8)] == [4, 5]


def _recording_score(batches):
  def fn(state, batch):
    del state
    batches.append(batch)
    return {"score": batch.sum(axis=1)}
  return fn


@pytest.mark.parametrize("order", ["shuffled", "sorted"])
def test_evaluate_scores_unpadded_batches_in_the_references_order(order):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(37, 3)).astype(np.float32)
  y = (rng.random(37) < 0.4).astype(np.int64)
  batches = []
  record = paper_repro.evaluate(_recording_score(batches), order, None, x, y, batch_size=16,
                                seed=0, step=5)
  assert [len(b) for b in batches] == [16, 16, 5]  # The last batch partial, never padded.
  seen = np.concatenate(batches)
  if order == "sorted":  # Normals first, each label in the split's order.
    np.testing.assert_array_equal(seen, np.concatenate([x[y == 0], x[y == 1]]))
  else:
    assert not np.array_equal(seen, x)
    np.testing.assert_array_equal(np.sort(seen, axis=0), np.sort(x, axis=0))
  # Min-max scaling is monotone: the AUROC of the raw per-sample scores.
  assert record == {"step": 5, "auroc": metrics.auroc(y, x.sum(axis=1))}


def test_paper_score_resolves_the_test_order_and_names_a_bad_one(make_method):
  ganomaly = make_method("ganomaly")
  assert paper_repro.paper_score(ganomaly) == ganomaly.paper_score
  assert paper_repro.paper_score(make_method("skip_ganomaly")).test_order == "sorted"
  ae = make_method("ae")  # No train-mode score: its own, shuffled.
  assert paper_repro.paper_score(ae) == base.PaperScore(ae.score, "shuffled")
  assert paper_repro.paper_score(ganomaly, "sorted") == ganomaly.paper_score._replace(
      test_order="sorted")
  with pytest.raises(ValueError, match="paper_repro_test_order='random'"):
    paper_repro.paper_score(ganomaly, "random")


def test_summary_keeps_the_first_best_epoch_and_the_last():
  records = [{"step": 8, "auroc": 0.7}, {"step": 16, "auroc": 0.9},
             {"step": 24, "auroc": 0.9}, {"step": 30, "auroc": 0.6}]
  out = paper_repro.summary(records, "shuffled")
  assert (out["auroc"], out["best_step"], out["auroc_last"]) == (0.9, 16, 0.6)
  assert "shuffled" in out["protocol"]
  with pytest.raises(ValueError, match="no epoch"):
    paper_repro.summary([], "shuffled")


@pytest.fixture
def make_method():
  return lambda name: methods.make(tiny_config(name), (16, 16, 1))


@pytest.fixture(scope="module")
def ganomaly_runs(tmp_path_factory):
  """GANomaly runs of STEPS steps: honest only; paper_repro; paper_repro resumed after 9 steps."""
  root = tmp_path_factory.mktemp("paper_repro")
  honest = train.train_and_evaluate(tiny_config("ganomaly", **{"train.num_steps": STEPS}),
                                    str(root / "honest"))
  paper = train.train_and_evaluate(
      tiny_config("ganomaly", **{"train.num_steps": STEPS, "eval.paper_repro": True}),
      str(root / "paper"))
  train.train_and_evaluate(tiny_config("ganomaly", **{"train.num_steps": 9,
                                                      "eval.paper_repro": True}),
                           str(root / "resumed"))
  resumed = train.train_and_evaluate(
      tiny_config("ganomaly", **{"train.num_steps": STEPS, "eval.paper_repro": True}),
      str(root / "resumed"))
  return honest, paper, resumed


def test_paper_repro_leaves_the_honest_numbers_unchanged(ganomaly_runs):
  honest, paper, _ = ganomaly_runs
  # Same program, same state: bitwise.
  assert paper["metrics"] == honest["metrics"]
  assert "paper_repro" not in honest
  epochs = paper["paper_repro"]["per_epoch"]
  steps_per_epoch = paper["sizes"]["train"] // 16
  assert [r["step"] for r in epochs] == sorted(
      {s for s in range(steps_per_epoch, STEPS + 1, steps_per_epoch)} | {STEPS})
  assert paper["paper_repro"]["auroc"] == max(r["auroc"] for r in epochs)


def test_paper_repro_scores_with_train_mode_batchnorm(ganomaly_runs):
  # At the last step the honest (eval-mode) and the references' (train-mode
  # BatchNorm) AUROCs of the same state come from different scores.
  _, paper, _ = ganomaly_runs
  assert paper["paper_repro"]["auroc_last"] != paper["metrics"]["score"]["auroc"]


def test_resumed_paper_repro_run_has_the_uninterrupted_records(ganomaly_runs):
  _, paper, resumed = ganomaly_runs
  assert resumed["paper_repro"] == paper["paper_repro"]
  assert resumed["metrics"] == paper["metrics"]


def test_paper_repro_refuses_an_ensemble(tmp_path):
  config = tiny_config("ae", **{"eval.paper_repro": True})
  config.ensemble.seeds = (0, 1)
  with pytest.raises(ValueError, match="paper_repro"):
    train.train_and_evaluate(config, str(tmp_path))
