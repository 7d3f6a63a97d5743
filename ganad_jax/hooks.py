"""What the training loop runs besides the step: hooks, built from the config.

The loop (`ganad_jax.train`) names no feature. Each hook `build` returns is
called at fixed points (big_vision runs its evaluators the same way):
  - `restore(step, meta)` once, before the first step: the step training
    starts from and the JSON record of the checkpoint it resumed ({} if none);
  - after each step it is `due` at: `on_step(state, step)`, which returns
    scalars for TensorBoard. A hook that `keeps_state` (saves it) is handed
    a state the loop has checked for NaN / Inf (`divergence.check_state`);
  - `stop`: training ends once any hook says so;
  - `checkpoint_meta()`: its record, saved with every checkpoint and handed
    back to `restore` on resume, so that a resumed run replays an
    uninterrupted one;
  - `finish(state, step)` once, at the end: the state training returns and
    the entries it adds to the run's info.
A closed-form fit (no `train_step`) is step 0: the hooks due then see the
fitted state.

Hooks, in the order the loop calls them:
  - `EarlyStopping` (`config.train.early_stopping.eval_every` > 0, trained
    methods): the validation normals, `ganad_jax.early_stopping`;
  - `PaperRepro` (`config.eval.paper_repro`): the GAN references' per-epoch
    test evaluation, `ganad_jax.paper_repro`.
"""

from absl import logging
import ml_collections
import numpy as np

from ganad_jax import checkpoints
from ganad_jax import data
from ganad_jax import early_stopping
from ganad_jax import paper_repro
from ganad_jax import runner
from ganad_jax import scoring


class Hook:
  """The interface the training loop calls; each method does nothing here.

  Attributes:
    keeps_state: whether `on_step` saves the state (the loop checks it for
      NaN / Inf first, as it does before a checkpoint).
  """

  keeps_state = False

  def restore(self, step: int, meta: dict) -> None:
    """Before the first step: training starts after `step`; `meta` is the resumed checkpoint's."""

  def due(self, step: int) -> bool:  # pylint: disable=unused-argument
    """Whether `on_step` runs after `step`."""
    return False

  def on_step(self, state, step: int) -> dict[str, float]:  # pylint: disable=unused-argument
    """Looks at the state after `step` (never changes it); returns {TensorBoard tag: value}."""
    return {}

  @property
  def stop(self) -> bool:
    """Whether training should end now."""
    return False

  def checkpoint_meta(self) -> dict:
    """JSON entries saved with a checkpoint (`restore` gets them back)."""
    return {}

  def finish(self, state, step: int) -> tuple[object, dict]:  # pylint: disable=unused-argument
    """(the state training returns, entries for its info), after the last `step`."""
    return state, {}


class EarlyStopping(Hook):
  """Every `eval_every` steps: each member's mean validation score; keeps the best state.

  The best state goes to `workdir/best` (`early_stopping.BestCheckpoint`) and
  is what training returns; training stops once every member has gone
  `patience` evaluations without improving by `min_delta`
  (`early_stopping.Tracker`). Its record lives in `best/`, not in the
  checkpoint meta: `restore` derives the tracker from it.
  """

  keeps_state = True

  def __init__(self, config: ml_collections.ConfigDict, run: runner.Run, workdir: str,
               val_x: np.ndarray, abstract_state, state_sharding):
    self._config, self._run, self._workdir, self._val_x = config, run, workdir, val_x
    self._early = config.train.early_stopping
    self._abstract, self._sharding = abstract_state, state_sharding
    self._scorer = scoring.Scorer(run, config.eval.batch_size, state_sharding)
    self.tracker = self._best = None

  def restore(self, step, meta):
    """Reads `workdir/best` (creating it if need be).

    Raises:
      checkpoints.IncompatibleCheckpointError: best/ holds another run's state.
    """
    del meta  # The record is best/'s own.
    run = self._run
    mngr = checkpoints.manager(self._workdir, self._config, name="best", max_to_keep=1)
    self.tracker = early_stopping.Tracker.resume(self._early, mngr, step, run.meta,
                                                 run.num_members)
    self._best = early_stopping.BestCheckpoint(mngr, run.meta, self._abstract, self._sharding,
                                               run.stacked)

  def due(self, step):
    return step % self._early.eval_every == 0

  def on_step(self, state, step):
    """Per member, the mean `early_stopping.score` of the validation normals (logged)."""
    run, name = self._run, self._early.score
    outs = self._scorer.members(state, self._val_x)
    values = [float(np.mean(out[name])) for out in outs]
    improved = self.tracker.update(values, step)
    if any(improved):
      self._best.save(step, state, improved, self.tracker)
    return {f"member{m}/val/mean_{name}" if run.stacked else f"val/mean_{name}": value
            for m, value in enumerate(values)}

  @property
  def stop(self):
    return self.tracker.done

  def finish(self, state, step):
    """The best state; info gets "stopped_early", "best_step", "best_val_score"."""
    if self.tracker.done:
      logging.info("Early stopping at step %d: mean validation %s has not improved for %d "
                   "evaluations since step(s) %s.", step, self._early.score,
                   self._early.patience,
                   self.tracker.best_steps if self._run.stacked else self.tracker.best_steps[0])
    return (self._best.final_state(state, step, self.tracker),
            self.tracker.info(self._run.stacked))


class PaperRepro(Hook):
  """The references' `test()` at every epoch's end and the last step (`paper_repro.evaluate`).

  Its records go into every checkpoint's meta ("paper_repro") and come back
  on resume; info gets their `paper_repro.summary` under "paper_repro".
  """

  def __init__(self, config: ml_collections.ConfigDict, run: runner.Run, test: data.Split,
               total_steps: int, num_train: int, state_sharding):
    """Raises ValueError for an ensemble, no test split, or an unknown test order."""
    if test is None:
      raise ValueError("config.eval.paper_repro=True evaluates on a labelled test split; "
                       "these data have none.")
    if run.stacked:
      raise ValueError("config.eval.paper_repro=True is for single runs; this config is an "
                       "ensemble (config.ensemble). Run its members one by one.")
    self._run, self._test, self._seed = run, test, config.seed
    self._total, self._num_train = total_steps, num_train
    self._paper = paper_repro.paper_score(run.method, config.eval.paper_repro_test_order)
    self._scorer = scoring.Scorer(run, config.eval.batch_size, state_sharding,
                                  score=self._paper.score)
    self.records = []

  def restore(self, step, meta):
    # A run resumed with more steps drops the record of its predecessor's last
    # step where that was no epoch's end: the uninterrupted run has none there.
    del step
    self.records = [r for r in meta.get("paper_repro", []) if self.due(r["step"])]

  def due(self, step):
    return paper_repro.is_epoch_end(step, self._total, self._num_train, self._run.batch_size)

  def on_step(self, state, step):
    self.records.append(paper_repro.evaluate(self._scorer.batch, self._paper.test_order, state,
                                             self._test.x, self._test.y, self._run.batch_size,
                                             self._seed, step))
    return {}

  def checkpoint_meta(self):
    return {"paper_repro": list(self.records)}

  def finish(self, state, step):
    return state, {"paper_repro": paper_repro.summary(self.records, self._paper.test_order)}


def build(config: ml_collections.ConfigDict, run: runner.Run, workdir: str, splits: data.Splits,
          total_steps: int, abstract_state, state_sharding) -> list[Hook]:
  """The hooks `config` asks for, in the order the loop calls them.

  Args:
    config: the run's (validated) config.
    run: `runner.build`'s run.
    workdir: the run's workdir.
    splits: the run's data (val: early stopping; test: paper_repro only).
    total_steps: the run's steps; 0 for a closed-form fit (no early stopping).
    abstract_state, state_sharding: `runner.abstract_init`'s.

  Raises:
    ValueError: paper_repro with an ensemble, or an unknown
      `config.eval.paper_repro_test_order`.
  """
  hooks = []
  if config.train.early_stopping.eval_every > 0 and total_steps > 0:
    hooks.append(EarlyStopping(config, run, workdir, splits.val.x, abstract_state,
                               state_sharding))
  if config.eval.paper_repro:
    hooks.append(PaperRepro(config, run, splits.test, total_steps, len(splits.train.x),
                            state_sharding))
  return hooks
