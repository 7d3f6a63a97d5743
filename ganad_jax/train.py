"""`train(config, workdir, splits=None)`: the one training loop every method uses.

`train_and_evaluate(config, workdir)` is the job around it: train (loading
the data), score val and test, write the report.

The training set lives on the device; each step gathers its batch there from a
per-epoch permutation drawn with `fold_in(data_key, epoch)`, and gets its own
key `fold_in(step_key, step)` (`runner.make_train_step`). Both depend only on
(seed, step), so a resumed run replays exactly the batches and randomness of
an uninterrupted one.

An ensemble (`config.ensemble`: seeds x a grid of vmappable hyperparameters,
see `ganad_jax.ensemble`) goes through this same loop: its stacked method has
a leading member axis on the state, the keys and the per-member batches
(gathered from the one shared training array), so checkpoints, resume, hooks,
divergence checks and reports are this code.

What the loop calls: `runner` (the run and its jitted step on the
("members", "data") mesh), `checkpoints`, `divergence` (fail fast on NaN /
Inf), `hooks` (built from the config: early stopping, paper_repro; called at
their steps, their records saved with each checkpoint), `run_report` (results,
TensorBoard, figures). The job scores val and test with the run's
`scoring.Scorer`, as the early-stopping hook scores the validation normals.
"""

import math
import os
import time
from typing import Any, NamedTuple

from absl import logging
import jax
import ml_collections
import numpy as np

from ganad_jax import checkpoints
from ganad_jax import configs
from ganad_jax import data
from ganad_jax import divergence
from ganad_jax import evaluation
from ganad_jax import hooks as hooks_lib
from ganad_jax import run_outputs
from ganad_jax import run_report
from ganad_jax import runner
from ganad_jax import scoring
from ganad_jax import sharding
# Imported for its reader of trained runs (`methods.runs`): a Gaussian on
# features='workdir' trains from another run's nets.
from ganad_jax import workdir as workdir_lib  # pylint: disable=unused-import


def num_train_steps(config, num_examples: int) -> int:
  """`train.num_steps` if > 0, else `num_epochs` epochs of whole batches (at least 1)."""
  if config.train.num_steps > 0:
    return int(config.train.num_steps)
  return max(1, math.ceil(config.train.num_epochs * (num_examples // config.train.batch_size)))


def prepare_workdir(workdir: str) -> None:
  """Creates `workdir` and proves it writable before any data is loaded.

  Raises:
    PermissionError: naming the workdir and the OS error.
  """
  try:
    os.makedirs(workdir, exist_ok=True)
    probe = os.path.join(workdir, f".write_test{jax.process_index()}")
    with open(probe, "w", encoding="utf-8") as f:
      f.write("ok")
    os.remove(probe)
  except OSError as e:
    raise PermissionError(f"workdir {workdir!r} is not writable: {e.strerror}") from None


def _fetch(metrics, stacked: bool):
  """Metrics on the host: floats, or (M,) arrays for an ensemble."""
  host = sharding.to_host(metrics)
  return {k: np.asarray(v, np.float64) if stacked else float(v) for k, v in host.items()}


def _member_metrics(metrics, m: int) -> dict[str, float]:
  return {k: float(v[m]) for k, v in metrics.items()}


def _metrics_record(metrics):
  """`_fetch`'s metrics in JSON form, saved with a checkpoint (floats, or lists per member)."""
  if metrics is None:
    return None
  return {k: [float(x) for x in v] if isinstance(v, np.ndarray) else float(v)
          for k, v in metrics.items()}


def _metrics_from_record(record, stacked: bool):
  """The inverse of `_metrics_record`: the metrics `_fetch` gave at the checkpoint's step."""
  if record is None:
    return None
  return {k: np.asarray(v, np.float64) if stacked else float(v) for k, v in record.items()}


def _log_train_metrics(writer, progress: run_outputs.Progress, run: runner.Run, metrics,
                       step: int) -> None:
  """The progress line and TensorBoard scalars: the mean over members, and each member's."""
  mean = {k: float(np.mean(v)) for k, v in metrics.items()}
  progress.report(step, mean)
  for k, v in mean.items():
    writer.add_scalar(f"train/{k}", v, step)
  for m in range(run.num_members if run.stacked else 0):
    for k, v in _member_metrics(metrics, m).items():
      writer.add_scalar(f"member{m}/train/{k}", v, step)


def _resume(config, mngr, run: runner.Run, abstract_state, total_steps: int):
  """(step, state, JSON record) of the newest good checkpoint; (None, None, {}) if none.

  Raises:
    checkpoints.IncompatibleCheckpointError: the checkpoint is of another run,
      or past `total_steps`.
  """
  start, state = checkpoints.restore_latest(mngr, abstract_state, run.meta,
                                            set_aside_corrupt=True)
  if state is None:
    return None, None, {}
  if start > total_steps:
    raise checkpoints.IncompatibleCheckpointError(
        f"Checkpoint {mngr.directory}/{start} is at step {start}, past the {total_steps} "
        f"steps of this run (train.num_steps={config.train.num_steps}, train.num_epochs="
        f"{config.train.num_epochs}). Use a fresh --workdir, or at least {start} steps.")
  logging.info("Resumed from %s at step %d.", mngr.directory, start)
  return start, state, checkpoints.read_meta(mngr, start)


def _finish(hooks, state, step: int, info: dict):
  """(the state training returns, info): each hook's `finish`, in order."""
  for hook in hooks:
    state, extra = hook.finish(state, step)
    info.update(extra)
  return state, info


class TrainResult(NamedTuple):
  """What `train` returns."""
  run: runner.Run  # The method, members, keys and mesh.
  state: Any  # The state training ends with (the best one with early stopping).
  info: dict  # steps, final_train_metrics, train_seconds, and the hooks' entries.
  splits: data.Splits  # The data it trained on (loaded by `train` if not given).


def train(config: ml_collections.ConfigDict, workdir: str,
          splits: data.Splits | None = None) -> TrainResult:
  """Trains `config.method` on `splits.train` (normals only): the one training entry.

  Validates the config, proves the workdir writable, then loads the data
  (`data.load(config.data, config.seed)`) unless `splits` are given. Resumes
  from `workdir/checkpoints`, saved every `train.checkpoint_every` steps, at
  the last step and when a hook stops training. Writes `config.json` once
  the checkpoint, if any, is found compatible. A method with a closed-form
  `fit` (no `train_step`) is fitted once and saved at step 0.

  The hooks of `hooks.build` run at their steps: with
  `config.train.early_stopping.eval_every` > 0, the state with the lowest mean
  validation score is kept in `workdir/best` and returned, and training stops
  after `patience` evaluations without an improvement of `min_delta`
  (`ganad_jax.early_stopping`). Test data plays no part, but for the labelled
  `config.eval.paper_repro` (`ganad_jax.paper_repro`), which only adds
  `info["paper_repro"]`.

  With `config.ensemble`, `run.method` is the stacked method, `state` has a
  leading member axis, every member has its own early stopping (its best
  state is kept once its patience has run out; training goes on while any
  member's has not) and `info` holds per-member lists.

  Raises:
    ValueError: an invalid config (`configs.validate`), fewer training
      examples than `config.train.batch_size`, or paper_repro with an ensemble.
    PermissionError: the workdir is not writable.
    checkpoints.IncompatibleCheckpointError: the workdir's checkpoint (or
      best state) is of another run, or past this run's steps.
    divergence.DivergenceError: a loss or the state became NaN / Inf.
  """
  configs.validate(config)
  prepare_workdir(workdir)
  if splits is None:
    splits = data.load(config.data, config.seed)
  t_start = time.perf_counter()
  num_train = len(splits.train.x)
  run = runner.build(config, splits.train.x.shape[1:], num_train,
                     data_sha256=runner.data_digest(splits))
  if num_train < run.batch_size:
    raise ValueError(f"The training split has {num_train} normal samples, fewer "
                     f"than config.train.batch_size={run.batch_size}.")
  total_steps = 0 if run.method.train_step is None else num_train_steps(config, num_train)
  train_x = sharding.put_train_data(run.mesh, splits.train.x, config.mesh.train_data)
  init_batch = sharding.put(run.mesh, splits.train.x[:run.batch_size])
  abstract_state, state_sharding = runner.abstract_init(run, init_batch)
  hooks = hooks_lib.build(config, run, workdir, splits, total_steps, abstract_state,
                          state_sharding)
  mngr = checkpoints.manager(workdir, config)
  # The checkpoints (latest, and the hooks' best/) are checked against this
  # run before anything is written: a refused run leaves config.json as it was.
  start, state, meta = _resume(config, mngr, run, abstract_state, total_steps)
  if state is None:
    state = runner.init_state(run, init_batch, state_sharding)
  step = int(np.max(sharding.to_host(state["step"])))
  for hook in hooks:
    hook.restore(step, meta)
  if jax.process_index() == 0:
    run_outputs.write_json(os.path.join(workdir, "config.json"), config.to_dict())

  if run.method.train_step is None:
    if start is None:
      state = sharding.reshard(run.method.fit(state, splits.train.x, splits.val.x),
                               state_sharding)
      divergence.check_state(state, {}, 0, workdir, None, run.members)
      checkpoints.save(mngr, 0, state, run.meta, force=True)
    for hook in hooks:
      if hook.due(0):  # A fit has no TensorBoard log: its scalars go to the log.
        for tag, value in hook.on_step(state, 0).items():
          logging.info("%s = %g after the fit.", tag, value)
    info = {"steps": 0, "train_seconds": time.perf_counter() - t_start,
            "final_train_metrics": None}
    return TrainResult(run, *_finish(hooks, state, 0, info), splits)

  # The train metrics of the checkpoint's step: a run resumed at its last
  # step reports the same final_train_metrics as the uninterrupted one.
  last_metrics = _metrics_from_record(meta.get("train_metrics"), run.stacked)
  stopping = any(hook.stop for hook in hooks)
  last_good = start
  embed_in_step = run.method.embed is not None
  if runner.embeds_once(run, config):  # The step draws from the features.
    embed_in_step = False
    features = runner.embed_training_split(run, state, splits.train.x, config.eval.batch_size,
                                           config.features.max_memory_mb)
    train_x = jax.tree.map(
        lambda f: sharding.put_train_data(run.mesh, f, config.mesh.train_data), features)
  progress = run_outputs.Progress(total_steps, first_step=step)
  t_train = time.perf_counter()
  with run_outputs.tensorboard_writer(workdir) as writer, jax.set_mesh(run.mesh):
    step_fn = runner.step_function(run, state_sharding,
                                   jax.tree.map(lambda x: x.sharding, train_x), num_train,
                                   embed_in_step)
    while not stopping and step < total_steps:
      step += 1
      state, metrics = step_fn(state, train_x, run.keys.data, run.keys.step)
      is_last = step == total_steps
      due = [hook for hook in hooks if hook.due(step)]
      kept = is_last or mngr.should_save(step) or any(hook.keeps_state for hook in due)
      if step % config.train.log_every == 0 or kept:
        last_metrics = _fetch(metrics, run.stacked)
        divergence.check_metrics(last_metrics, step, workdir, last_good, run.members)
        if step % config.train.log_every == 0 or is_last:
          _log_train_metrics(writer, progress, run, last_metrics, step)
        if kept:
          # The loss is that of the state before this step's update: check the
          # updated state itself, so that no saved state ever holds NaN / Inf.
          divergence.check_state(state, last_metrics, step, workdir, last_good, run.members)
      for hook in due:
        for tag, value in hook.on_step(state, step).items():
          writer.add_scalar(tag, value, step)
      stopping = any(hook.stop for hook in hooks)
      # Every saved step fetched its metrics (`kept`): they go with the state,
      # as do the hooks' records.
      if is_last or mngr.should_save(step) or stopping:
        meta = dict(run.meta, train_metrics=_metrics_record(last_metrics))
        for hook in hooks:
          meta.update(hook.checkpoint_meta())
        if checkpoints.save(mngr, step, state, meta, force=is_last or stopping):
          last_good = step
    mngr.wait_until_finished()
  train_seconds = time.perf_counter() - t_train

  if run.stacked and last_metrics is not None:
    last_metrics = [_member_metrics(last_metrics, m) for m in range(run.num_members)]
  info = {"steps": step, "final_train_metrics": last_metrics, "train_seconds": train_seconds}
  return TrainResult(run, *_finish(hooks, state, step, info), splits)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """The job: `train` (which loads the data), then scores val and test and writes the report.

  Writes `config.json` before training (once the workdir's checkpoint, if any,
  is found compatible) and `results.json` / `results.md` / figures at the end
  (`run_report.write`); returns the results (`run_report.results`). results.json
  records the config it was computed with (`workdir.finished_results` compares
  it before a grid reuses the run); a resumed run writes the same results.json
  as an uninterrupted one but for `wall_time_s`. For an ensemble the results
  hold every member's metrics and a table of mean +- std over seeds per grid
  point (`result_tables.mean_std_over_seeds`).

  Raises:
    As `train`, and FloatingPointError for non-finite scores
    (`evaluation.score_split`).
  """
  t_start = time.perf_counter()
  run, state, info, splits = train(config, workdir)

  t_score = time.perf_counter()
  scorer = scoring.Scorer(run, config.eval.batch_size)
  val = scorer.members(state, splits.val.x)
  test = scorer.members(state, splits.test.x)
  member_metrics = [evaluation.evaluate(splits.test, t, v, config.eval.threshold_quantile)
                    for t, v in zip(test, val)]
  score_seconds = time.perf_counter() - t_score

  results = run_report.results(config, splits, run, info, member_metrics, {
      "train": info["train_seconds"], "score": score_seconds,
      "total": time.perf_counter() - t_start})
  if jax.process_index() == 0:
    run_report.write(workdir, config, run, state, splits, test, val, results)
  return results
