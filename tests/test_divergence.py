"""Tests of `divergence`: a diverged run stops and keeps only finite checkpoints."""

import os

import jax
import jax.numpy as jnp
import pytest

from ganad_jax import divergence
from ganad_jax import train
import helpers


def _finite(tree):
  return all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(tree)
             if jnp.issubdtype(x.dtype, jnp.inexact))


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize("lr,checkpoint_every,match,kept", [
    # Adam moves every weight by ~lr: from step 2 the forward pass overflows to NaN.
    # Orbax always saves the first step, whose state is finite (if absurd); the loss
    # is next fetched at the step-4 log, one log interval later.
    (1e30, helpers.LONG_EVERY,
     r"^Training diverged at step 4: loss=nan; the last good checkpoint \(step 1\) "
     r"is kept in .*/checkpoints\. Lower config\.optim\.lr", [1]),
    # lr overflows float32 to inf: step 1's loss (computed before the update) is finite,
    # but the updated state is not; it must not become a checkpoint.
    (1e39, 1, r"^Training diverged at step 1: loss=[0-9.]+ but the updated state has non-finite "
              r"values in opt_state/hyperparams/learning_rate, params/.* and \d+ more; no "
              r"checkpoint was written\. Lower config\.optim\.lr", []),
])
def test_divergence_stops_the_run_and_keeps_only_good_checkpoints(tmp_path, lr, checkpoint_every,
                                                                  match, kept):
  workdir = str(tmp_path)
  config = helpers.long_config(**{"optim.lr": lr, "train.checkpoint_every": checkpoint_every,
                                  "train.log_every": 4})
  with pytest.raises(divergence.DivergenceError, match=match) as info:
    train.train_and_evaluate(config, workdir)
  assert "\n" not in str(info.value)
  assert not os.path.exists(os.path.join(workdir, "results.json"))
  assert helpers.checkpoint_steps(workdir) == kept
  if kept:  # The kept checkpoint predates the divergence and is finite.
    assert _finite(helpers.restore(workdir)[1])


def test_a_closed_form_fit_that_gives_nan_names_the_fit_not_a_learning_rate():
  state = {"stats": {"mean": jnp.zeros(3), "whitening": jnp.full((3, 3), jnp.nan)},
           "step": jnp.zeros((), jnp.int32)}
  with pytest.raises(divergence.DivergenceError) as info:
    divergence.check_state(state, {}, 0, "/tmp/w", None)  # {}: no train metrics, a fit.
  assert str(info.value) == (
      "The closed-form fit gave non-finite values in stats/whitening; no checkpoint was "
      "written. The method has no training steps or learning rate: check the training data "
      "(constant or repeated inputs) and the method's fit settings (a covariance regulariser "
      "such as padim.eps).")
  with pytest.raises(divergence.DivergenceError, match=r"Lower config\.optim\.lr"):
    divergence.check_state(state, {"loss": 1.0}, 5, "/tmp/w", None)
