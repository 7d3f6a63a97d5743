"""The GAN references' evaluation protocol (`config.eval.paper_repro`): labelled, never the default.

The published GANomaly and Skip-GANomaly numbers come from their reference
code (samet-akcay/ganomaly, samet-akcay/skip-ganomaly), which evaluates so:
  - after every training epoch, `test()` scores the whole test split;
  - with BatchNorm in train mode (each test batch normalised by its own
    statistics, so a score depends on its batch-mates): the method's
    `paper_score` where it has one, else its `score`;
  - from a shuffled loader, batches of the training batch size, the last one
    partial (never padded: padding would change the batch statistics);
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

import jax
import numpy as np

from ganad_jax import metrics as metrics_lib

PROTOCOL = ("test split after every epoch; the reference's test-time BatchNorm (train mode for "
            "GANomaly / Skip-GANomaly); shuffled batches of train.batch_size; min-max scaled; "
            "best epoch chosen on test labels")


def is_epoch_end(step: int, total_steps: int, num_train: int, batch_size: int) -> bool:
  """Whether the references would run `test()` after `step`: an epoch's end, or the last step."""
  return step % max(1, num_train // batch_size) == 0 or step == total_steps


def score_fn(method):
  """jit of the method's `paper_score` (or `score` where the reference scores as we do)."""
  return jax.jit(method.paper_score or method.score)


def evaluate(fn, state, x: np.ndarray, y: np.ndarray, key, batch_size: int, seed: int,
             step: int) -> dict:
  """The references' `test()` at `step`: {"step", "auroc"} of `fn` (`score_fn`) over the test split.

  Args:
    fn: `score_fn(method)`.
    state: the state after `step` (not changed).
    x: (N, ...) float32 test inputs; y: (N,) int labels, 1 = anomalous.
    key: the run's score key.
    batch_size: the training batch size (the references' test loader's).
    seed, step: the shuffle of the test split is drawn from (seed, step).
  """
  order = np.random.default_rng([seed, step]).permutation(len(x))
  scores = np.empty(len(x), np.float64)
  for start in range(0, len(x), batch_size):
    rows = order[start:start + batch_size]
    scores[rows] = np.asarray(fn(state, x[rows], key)["score"], np.float64)
  if not np.all(np.isfinite(scores)):
    raise FloatingPointError(f"paper_repro: non-finite test scores at step {step}.")
  span = scores.max() - scores.min()
  scaled = (scores - scores.min()) / span if span > 0 else np.zeros_like(scores)
  return {"step": int(step), "auroc": metrics_lib.auroc(y, scaled)}


def summary(records: list[dict]) -> dict:
  """results.json's "paper_repro": every epoch's AUROC, the best (the references' number), the last.

  Raises:
    ValueError: no evaluation was recorded.
  """
  if not records:
    raise ValueError("paper_repro: no epoch was evaluated.")
  best = max(records, key=lambda r: r["auroc"])  # The first of equals, as the references.
  return {"protocol": PROTOCOL, "auroc": best["auroc"], "best_step": best["step"],
          "auroc_last": records[-1]["auroc"], "per_epoch": records}
