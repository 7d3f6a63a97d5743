"""Early stopping on the validation normals, per ensemble member.

`config.train.early_stopping`: every `eval_every` steps the training loop
(`ganad_jax.train`) scores the validation normals and hands each member's mean
`score` to a `Tracker`, which counts evaluations without an improvement of
`min_delta` and says who has run out of `patience`. `BestCheckpoint` keeps the
best state in `workdir/best`: for an ensemble, each member's best state is
gathered from whichever step it was reached at (`select_members`). Test data
plays no part.

Nothing of this lives in the training state: on resume, the tracker is derived
from the best checkpoint's record, so a resumed run stops at exactly the step
an uninterrupted one would.
"""

import math
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from ganad_jax import checkpoints
from ganad_jax import run_outputs


class Tracker:
  """Per member: the best validation value, its step, evaluations since, stopped or not.

  Attributes:
    best_values: per member, the lowest mean validation score so far (inf: none yet).
    best_steps: per member, the step of that value, or None.
    bad_evals: per member, evaluations since the last improvement.
    stopped: per member, whether its patience has run out.
  """

  def __init__(self, early: ml_collections.ConfigDict, best_values: list[float],
               best_steps: list[int | None], bad_evals: list[int]):
    self._min_delta, self._patience = early.min_delta, early.patience
    self.best_values, self.best_steps, self.bad_evals = best_values, best_steps, bad_evals
    self.stopped = [b >= self._patience for b in bad_evals]

  @classmethod
  def resume(cls, early: ml_collections.ConfigDict, best_mngr: ocp.CheckpointManager,
             step: int, meta: dict, num_members: int = 1) -> "Tracker":
    """The tracker at `step`, from the record of the newest best checkpoint (fresh if none).

    Raises:
      checkpoints.IncompatibleCheckpointError: the best checkpoint is of another
        run (left beside an empty checkpoints/): it must not steer this one's stopping.
    """
    latest = best_mngr.latest_step()
    if latest is None:
      return cls(early, [math.inf] * num_members, [None] * num_members, [0] * num_members)
    saved = checkpoints.read_meta(best_mngr, latest)
    checkpoints.check_compatible(os.path.join(str(best_mngr.directory), str(latest)), saved,
                                 meta)
    values, steps = saved["val_score"], saved.get("best_steps", latest)
    if not isinstance(values, list):
      values, steps = [values], [steps]
    values = [math.inf if v is None else v for v in values]
    return cls(early, values, steps,
               [0 if s is None else (step - s) // early.eval_every for s in steps])

  @property
  def done(self) -> bool:
    """Every member's patience has run out."""
    return all(self.stopped)

  def update(self, values: list[float], step: int) -> list[bool]:
    """Records each member's mean validation score at `step`; returns who improved.

    A stopped member never improves again (its best state is final).
    """
    improved = [not self.stopped[m] and values[m] < self.best_values[m] - self._min_delta
                for m in range(len(values))]
    for m, value in enumerate(values):
      if improved[m]:
        self.best_values[m], self.best_steps[m], self.bad_evals[m] = value, step, 0
      elif not self.stopped[m]:
        self.bad_evals[m] += 1
      self.stopped[m] = self.bad_evals[m] >= self._patience
    return improved

  def info(self, stacked: bool) -> dict:
    """{"stopped_early", "best_step", "best_val_score" (None if not finite)}; lists if stacked."""
    if stacked:
      return {"stopped_early": [bool(s) for s in self.stopped], "best_step": self.best_steps,
              "best_val_score": [run_outputs.finite_or_none(v) for v in self.best_values]}
    return {"stopped_early": self.done, "best_step": self.best_steps[0],
            "best_val_score": run_outputs.finite_or_none(self.best_values[0])}


def select_members(mask, new, old):
  """Member m of `new` where mask[m], else of `old` (stacked states; mask (M,) bool)."""
  def pick(n, o):
    return jnp.where(mask.reshape(mask.shape + (1,) * (n.ndim - 1)), n, o)
  return jax.tree.map(pick, new, old)


class BestCheckpoint:
  """The best state so far, in `workdir/best` (one checkpoint kept).

  A single run saves its state at each improvement. An ensemble's best state
  holds, per member, its state at its own best step: improved members are
  swapped into it (`select_members`, jitted with the state's sharding) before
  it is saved with every member's best value and step.
  """

  def __init__(self, mngr: ocp.CheckpointManager, meta: dict, abstract_state, state_sharding,
               stacked: bool):
    """Reads back an ensemble's best state, if `mngr` holds one.

    Args:
      mngr: `checkpoints.manager(workdir, config, name="best", max_to_keep=1)`.
      meta: the run's checkpoint record (`Tracker.resume` has checked the
        saved one against it).
      abstract_state: the state's shapes, dtypes and shardings (`runner.abstract_init`).
      state_sharding: the state's shardings.
      stacked: the state has a leading member axis (an ensemble).
    """
    self.mngr = mngr
    self._meta, self._abstract, self._stacked = meta, abstract_state, stacked
    self._state = None  # An ensemble's best members, gathered from several steps.
    if stacked and self.mngr.latest_step() is not None:
      self._state = checkpoints.restore_latest(self.mngr, abstract_state, meta)[1]
    self._keep = jax.jit(select_members, out_shardings=state_sharding) if stacked else None

  def save(self, step: int, state, improved: list[bool], tracker: Tracker) -> None:
    """Saves the best state after `tracker.update` said who `improved` at `step`."""
    if not self._stacked:
      checkpoints.save(self.mngr, step, state,
                       dict(self._meta, val_score=tracker.best_values[0]), force=True)
      return
    self._state = self._keep(np.asarray(improved), state,
                             state if self._state is None else self._state)
    checkpoints.save(self.mngr, step, self._state,
                     dict(self._meta, val_score=list(tracker.best_values),
                          best_steps=list(tracker.best_steps)), force=True)

  def final_state(self, state, step: int, tracker: Tracker):
    """What training returns: the best state, or `state` (at `step`) if it is the best."""
    if self._stacked:
      return state if self._state is None else self._state
    if tracker.best_steps[0] is not None and tracker.best_steps[0] != step:
      return checkpoints.restore_latest(self.mngr, self._abstract, self._meta)[1]
    return state
