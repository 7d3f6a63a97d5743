"""The GAN references' evaluation protocol (`config.eval.paper_repro`): labelled, never the default.

The published GANomaly and Skip-GANomaly numbers come from their reference
code (samet-akcay/ganomaly, samet-akcay/skip-ganomaly), which evaluates so:
  - after every training epoch, `test()` scores the whole test split;
  - with BatchNorm in train mode (each test batch normalised by its own
    statistics, so a score depends on its batch-mates): the method's
    `paper_score` (`methods.base.PaperScore`) where it has one, else its
    `score`;
  - in batches of the training batch size, the last one partial (never
    padded: padding would change the batch statistics), from the reference's
    test loader: shuffled (GANomaly on MNIST and folders) or not shuffled with
    the normals first (Skip-GANomaly; GANomaly on CIFAR-10), so that every
    batch but one holds a single label and train-mode BatchNorm sees it;
  - scores min-max scaled over the test set (monotone: AUROC unchanged);
  - the number printed and saved is the best AUROC over epochs: the epoch is
    chosen on test labels.
With `config.eval.paper_repro`, the training loop (`ganad_jax.train`) calls
`evaluate` at the end of every epoch of `num_train // batch_size` steps and
at the last step (a closed-form method: once, after its fit); results.json
gets these numbers under "paper_repro" (`summary`). They use test labels
during training, so they are not a result of this project: the run's own
metrics are computed exactly as without the switch (same state, same keys,
bitwise), and `benchmark.py` shows both protocols side by side.
"""

from typing import Callable

import numpy as np

from ganad_jax import metrics as metrics_lib
from ganad_jax.methods import base

TEST_ORDERS = ("shuffled", "sorted")


def is_epoch_end(step: int, total_steps: int, num_train: int, batch_size: int) -> bool:
  """Whether the references would run `test()` after `step`: an epoch's end, or the last step."""
  return step % max(1, num_train // batch_size) == 0 or step == total_steps


def paper_score(method: base.Method, test_order: str = "reference") -> base.PaperScore:
  """The method's `paper_score` (or its `score`, shuffled, where it has none), not jitted.

  The score function goes to a `scoring.Scorer(run, batch_size, score=...)`,
  whose `batch` scores the references' unpadded batches (`evaluate`).

  Args:
    method: the run's method.
    test_order: `config.eval.paper_repro_test_order`: "reference" keeps the
      method's, or one of TEST_ORDERS.

  Raises:
    ValueError: an unknown `test_order`, named.
  """
  if test_order not in ("reference",) + TEST_ORDERS:
    raise ValueError(f"config.eval.paper_repro_test_order={test_order!r}; choose one of "
                     f"reference, {', '.join(TEST_ORDERS)}.")
  paper = method.paper_score or base.PaperScore(method.score)
  return paper if test_order == "reference" else paper._replace(test_order=test_order)


def evaluate(score_batch: Callable[[object, np.ndarray], dict], test_order: str, state,
             x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, step: int) -> dict:
  """The references' `test()` at `step`: {"step", "auroc"} over the test split.

  Args:
    score_batch: score_batch(state, batch (B, ...)) -> {"score": (B,), ...}
      on the batch as it is: `scoring.Scorer(run, ..., score=paper_score(
      method).score).batch`, which gives it the run's score key.
    test_order: "shuffled" (drawn from (seed, step)) or "sorted" (the split's
      order within the normals, then within the anomalies): `paper_score`'s.
    state: the state after `step` (not changed).
    x: (N, ...) float32 test inputs; y: (N,) int labels, 1 = anomalous.
    batch_size: the training batch size (the references' test loader's).
    seed, step: the run's seed and the step evaluated.

  Raises:
    FloatingPointError: a non-finite score.
  """
  if test_order == "shuffled":
    order = np.random.default_rng([seed, step]).permutation(len(x))
  else:
    order = np.argsort(y, kind="stable")
  scores = np.empty(len(x), np.float64)
  for start in range(0, len(x), batch_size):
    rows = order[start:start + batch_size]
    scores[rows] = np.asarray(score_batch(state, x[rows])["score"], np.float64)
  if not np.all(np.isfinite(scores)):
    raise FloatingPointError(f"paper_repro: non-finite test scores at step {step}.")
  span = scores.max() - scores.min()
  scaled = (scores - scores.min()) / span if span > 0 else np.zeros_like(scores)
  return {"step": int(step), "auroc": metrics_lib.auroc(y, scaled)}


def summary(records: list[dict], test_order: str) -> dict:
  """results.json's "paper_repro": every epoch's AUROC, the best (the references' number), the last.

  Raises:
    ValueError: no evaluation was recorded.
  """
  if not records:
    raise ValueError("paper_repro: no epoch was evaluated.")
  best = max(records, key=lambda r: r["auroc"])  # The first of equals, as the references.
  protocol = (f"test split after every epoch; the reference's test-time BatchNorm; {test_order} "
              "batches of train.batch_size; min-max scaled; best epoch chosen on test labels")
  return {"protocol": protocol, "auroc": best["auroc"], "best_step": best["step"],
          "auroc_last": records[-1]["auroc"], "per_epoch": records}
