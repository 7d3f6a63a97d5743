"""`train_and_evaluate(config, workdir)`: the one training loop every method uses.

The training set lives on the device; each step gathers its batch there from a
per-epoch permutation drawn with `fold_in(data_key, epoch)`, and gets its own
key `fold_in(step_key, step)`. Both depend only on (seed, step), so a resumed
run replays exactly the batches and randomness of an uninterrupted one.

An ensemble (`config.ensemble`: seeds x a grid of vmappable hyperparameters,
see `ganad_jax.ensemble`) goes through this same loop: its stacked method has
a leading member axis on the state, the keys and the per-member batches
(gathered from the one shared training array), so checkpoints, resume, early
stopping (per member), divergence checks and reports are this code. Every
jitted function runs on the ("members", "data") mesh of `ganad_jax.sharding`.
"""

import json
import math
import os
import shutil
import time
from typing import NamedTuple

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tensorboardX

from ganad_jax import checkpoints
from ganad_jax import configs
from ganad_jax import data
from ganad_jax import ensemble
from ganad_jax import evaluation
from ganad_jax import methods
from ganad_jax import reporting
from ganad_jax import sharding
from ganad_jax import viz
from ganad_jax.methods import base

P = sharding.P


class DivergenceError(FloatingPointError):
  """A training loss became NaN or Inf."""


def batch_indices(data_key, step, num_examples: int, batch_size: int):
  """Indices of the batch for `step`: epoch-wise permutations, remainder dropped."""
  steps_per_epoch = num_examples // batch_size
  epoch, offset = step // steps_per_epoch, step % steps_per_epoch
  perm = jax.random.permutation(jax.random.fold_in(data_key, epoch), num_examples)
  return jax.lax.dynamic_slice_in_dim(perm, offset * batch_size, batch_size)


def make_train_step(method, batch_size: int, num_examples: int | None = None,
                    stacked: bool = False):
  """Wraps `method.train_step` so that it gathers its own batch on the device.

  Args:
    method: a Method, or the stacked Method of an ensemble.
    batch_size: examples per batch (per member).
    num_examples: training examples to draw from (default: all rows of
      `train_x`; a row-sharded `train_x` has padding rows after them).
    stacked: `method` is an ensemble's: `state`, `data_key` and `step_key`
      have a leading member axis and every member gathers its own batch, the
      one its seed would give a single run, from the shared `train_x`.

  Returns:
    step_fn(state, train_x, data_key, step_key) -> (state, metrics).
  """
  def batch_and_key(train_x, step, data_key, step_key):
    n = train_x.shape[0] if num_examples is None else num_examples
    idx = batch_indices(data_key, step, n, batch_size)
    return train_x[idx], jax.random.fold_in(step_key, step)

  def step_fn(state, train_x, data_key, step_key):
    if stacked:
      batch, key = jax.vmap(batch_and_key, in_axes=(None, 0, 0, 0))(
          train_x, state["step"], data_key, step_key)
    else:
      batch, key = batch_and_key(train_x, state["step"], data_key, step_key)
    batch = sharding.constrain(batch, sharding.batch_spec(stacked))
    return method.train_step(state, batch, key)

  return step_fn


def num_train_steps(config, num_examples: int) -> int:
  if config.train.num_steps > 0:
    return int(config.train.num_steps)
  return max(1, math.ceil(config.train.num_epochs * (num_examples // config.train.batch_size)))


def root_keys(seed: int):
  """(init, data, step, score) keys: one root key split by purpose."""
  return jax.random.split(jax.random.key(seed), 4)


def prepare_workdir(workdir: str) -> None:
  """Creates `workdir` and proves it writable before any data is loaded."""
  try:
    os.makedirs(workdir, exist_ok=True)
    probe = os.path.join(workdir, f".write_test{jax.process_index()}")
    with open(probe, "w", encoding="utf-8") as f:
      f.write("ok")
    os.remove(probe)
  except OSError as e:
    raise PermissionError(f"workdir {workdir!r} is not writable: {e.strerror}") from None


def checkpoint_meta(config, input_shape, data_sha256: str | None = None) -> dict:
  """What a checkpoint must match to be restored into this run (`checkpoints.restore_latest`).

  Args:
    config: the run's config.
    input_shape: shape of one example.
    data_sha256: for a training run, the digest of the data training sees
      (`data_digest`). With it the record also holds `run`: every config field
      except `configs.RESUME_NEUTRAL_FIELDS` (data, protocol, seed, train
      settings, ...) and this digest, so that a checkpoint of another run is
      never resumed. Without it (scoring a trained workdir) only the model
      (method, shape, architecture, optimiser, dtype, ensemble) is checked.

  Returns:
    The record, in its JSON form.
  """
  # The optimiser's settings live in its restored state (inject_hyperparams),
  # so a resume with other settings would silently ignore them: refuse it.
  meta = {"method": config.method, "input_shape": list(input_shape),
          "model": config.model.to_dict(), "optim": config.optim.to_dict(),
          "compute_dtype": config.compute_dtype}
  if config.method in config:  # The method's own section: its weights live in the state.
    meta[config.method] = config[config.method].to_dict()
  if ensemble.plan(config) is not None:  # A stacked state: its members must match too.
    meta["ensemble"] = {"seeds": config.ensemble.seeds, "grid": config.ensemble.grid}
  if data_sha256 is not None:
    meta["run"] = dict(configs.run_record(config, configs.RESUME_NEUTRAL_FIELDS),
                       data_sha256=data_sha256)
  return json.loads(json.dumps(meta))  # As it reads back from disk: tuples become lists.


def data_digest(splits: data.Splits) -> str:
  """SHA-256 of the data training sees: the training split and the validation normals.

  (Early stopping selects the state on the validation normals.) Test data are
  scored after training, from the data of the run that scores them.
  """
  return data.digest(splits.train.x, splits.val.x)


class Run(NamedTuple):
  """What a run is made of, built once from its config (`build`).

  Attributes:
    method: the method, or for an ensemble its stacked method (`ensemble.make`).
    members: the ensemble's members, or None for a single run.
    keys: (init, data, step, score) keys on the mesh; (M,) each for an ensemble.
    meta: the checkpoint compatibility record.
    mesh: the ("members", "data") device mesh.
    batch_size: the training batch size (per member).
  """
  method: base.Method
  members: ensemble.Members | None
  keys: tuple
  meta: dict
  mesh: jax.sharding.Mesh
  batch_size: int

  @property
  def stacked(self) -> bool:
    return self.members is not None

  @property
  def num_members(self) -> int:
    return self.members.size if self.stacked else 1

  def key_sharding(self):
    return jax.sharding.NamedSharding(self.mesh, P("members") if self.stacked else P())


def build(config: ml_collections.ConfigDict, input_shape, num_train: int | None = None,
          data_sha256: str | None = None) -> Run:
  """The method (stacked for an ensemble), keys, mesh and checkpoint record of a run.

  `data_sha256` (a training run's `data_digest`) goes into the checkpoint
  record (`checkpoint_meta`).
  """
  input_shape = tuple(input_shape)
  members = ensemble.plan(config)
  if members is None:
    method = methods.make(config, input_shape)
    keys = tuple(root_keys(config.seed))
  else:
    method = ensemble.make(config, input_shape, members)
    # Member m's keys are those of the single run with its seed.
    keys = tuple(jnp.stack(k) for k in zip(*(tuple(root_keys(s)) for s in members.seeds)))
  batch_size = config.train.batch_size
  if method.train_step is None and num_train is not None:
    batch_size = min(batch_size, num_train)  # Only init sees a batch.
  split = (batch_size,) if method.train_step is not None else ()
  mesh = sharding.make_mesh(config.mesh, members.size if members else 1,
                            split + (config.eval.batch_size,))
  spec = P("members") if members else P()
  keys = tuple(sharding.put(mesh, k, spec) for k in keys)
  return Run(method, members, keys, checkpoint_meta(config, input_shape, data_sha256), mesh,
             batch_size)


def step_function(run: Run, state_sharding, train_x_sharding, num_train: int):
  """The run's jitted train step on its mesh (state donated).

  step_fn(state, train_x, data_key, step_key) -> (state, metrics); an
  ensemble's runs per "members" shard (`sharding.over_members`).
  """
  step_fn = make_train_step(run.method, run.batch_size, num_train, run.stacked)
  if run.stacked:
    members = P("members")
    step_fn = sharding.over_members(step_fn, run.mesh, (members, P(), members, members),
                                    (members, members))
  key_sharding = run.key_sharding()
  return jax.jit(step_fn, in_shardings=(state_sharding, train_x_sharding, key_sharding,
                                        key_sharding),
                 out_shardings=(state_sharding, sharding.replicated(run.mesh)), donate_argnums=0)


def abstract_init(run: Run, batch):
  """(abstract state with its shardings, the shardings) of `run.method.init`."""
  abstract = jax.eval_shape(run.method.init, run.keys[0], batch)
  shardings = sharding.state_sharding(run.mesh, abstract, run.stacked)
  return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                      abstract, shardings), shardings


def init_state(run: Run, batch, state_sharding):
  """`run.method.init` on the mesh, placed with `state_sharding` (from `abstract_init`)."""
  with jax.set_mesh(run.mesh):
    # Computed replicated, then split: XLA cannot partition the grouped
    # convolutions of a vmapped init over the member axis.
    state = jax.jit(run.method.init, out_shardings=sharding.replicated(run.mesh))(
        run.keys[0], batch)
  return sharding.reshard(state, state_sharding)


def _score_fn(run: Run, state_sharding):
  """jit of `run.method.score` on the mesh: batch split over "data", outputs on every host.

  An ensemble's outputs come back batch-major (N, M, ...), the layout
  `evaluation.score_split` pads and slices; `_score` splits them per member.
  """
  def score(state, batch, key):
    return run.method.score(state, sharding.constrain(batch, P("data")), key)

  if run.stacked:
    members_score = sharding.over_members(score, run.mesh, (P("members"), P(), P("members")),
                                          P("members"))

    def fn(state, batch, key):
      return jax.tree.map(lambda a: jnp.moveaxis(a, 0, 1), members_score(state, batch, key))
  else:
    fn = score

  replicated = sharding.replicated(run.mesh)
  return jax.jit(fn, in_shardings=(state_sharding, replicated, run.key_sharding()),
                 out_shardings=replicated)


def _score(run: Run, score_fn, state, x, batch_size: int) -> list[dict[str, np.ndarray]]:
  """Per member (one for a single run), the outputs of `score_fn` over x."""
  out = evaluation.score_split(score_fn, state, x, run.keys[3], batch_size)
  if not run.stacked:
    return [out]
  return [{k: v[:, m] for k, v in out.items()} for m in range(run.num_members)]


def score_members(run: Run, state, x, batch_size: int) -> list[dict[str, np.ndarray]]:
  """Per member (one for a single run), the method's outputs over x, on the run's mesh."""
  with jax.set_mesh(run.mesh):
    score_fn = _score_fn(run, sharding.state_sharding(run.mesh, state, run.stacked))
    return _score(run, score_fn, state, x, batch_size)


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


def _kept(workdir: str, last_good) -> str:
  return (f"the last good checkpoint (step {last_good}) is kept in {workdir}/checkpoints"
          if last_good is not None else "no checkpoint was written")


def _shown(names: list[str]) -> str:
  return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _check_finite(metrics, step: int, workdir: str, last_good, members=None) -> None:
  if members is None:
    bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
    if bad:
      raise DivergenceError(
          f"Training diverged at step {step}: {', '.join(f'{k}={v}' for k, v in bad.items())}; "
          f"{_kept(workdir, last_good)}. Lower config.optim.lr or check the data.")
    return
  bad = {}
  for m in range(members.size):
    values = {k: v for k, v in _member_metrics(metrics, m).items() if not math.isfinite(v)}
    if values:
      bad[m] = values
  if bad:
    raise DivergenceError(
        f"Training diverged at step {step} in {len(bad)} of {members.size} ensemble members: "
        + _shown([f"member {m} ({members.label(m)}): "
                  + ", ".join(f"{k}={v}" for k, v in values.items())
                  for m, values in bad.items()])
        + f"; {_kept(workdir, last_good)}. Lower config.optim.lr (or drop the diverging grid "
        "points) or check the data.")


def _check_finite_state(state, metrics, step: int, workdir: str, last_good,
                        members=None) -> None:
  leaves = jax.tree_util.tree_flatten_with_path(state)[0]
  bad = {}  # Member (None for a single run) -> paths of non-finite leaves.
  for path, x in leaves:
    if not jnp.issubdtype(x.dtype, jnp.inexact):
      continue
    finite = np.isfinite(sharding.to_host(x))
    name = jax.tree_util.keystr(path, simple=True, separator="/")
    if members is None:
      if not finite.all():
        bad.setdefault(None, []).append(name)
    else:
      for m in np.flatnonzero(~finite.reshape(finite.shape[0], -1).all(axis=1)):
        bad.setdefault(int(m), []).append(name)
  if not bad:
    return
  if members is None:
    raise DivergenceError(
        f"Training diverged at step {step}: loss={metrics.get('loss')} but the updated state "
        f"has non-finite values in {_shown(bad[None])}; {_kept(workdir, last_good)}. "
        "Lower config.optim.lr or check the data.")
  def loss(m):
    return float(metrics["loss"][m]) if metrics else None

  raise DivergenceError(
      f"Training diverged at step {step} in {len(bad)} of {members.size} ensemble members: "
      + "; ".join(f"member {m} ({members.label(m)}): loss={loss(m)} but its updated state has "
                  f"non-finite values in {_shown(paths)}" for m, paths in list(bad.items())[:3])
      + f"; {_kept(workdir, last_good)}. Lower config.optim.lr (or drop the diverging grid "
      "points) or check the data.")


def _early_stopping_state(config, best_mngr, step: int, meta: dict, num_members: int = 1):
  """Per member: (best values, best steps, evaluations without improvement) at `step`.

  Derived from the saved best checkpoint, not kept in the training state, so a
  resumed run stops at exactly the step an uninterrupted one would.
  """
  every = config.train.early_stopping.eval_every
  latest = best_mngr.latest_step()
  if latest is None:
    return [math.inf] * num_members, [None] * num_members, [0] * num_members
  saved = checkpoints.read_meta(best_mngr, latest)
  # A best state of another run (left beside an empty checkpoints/) must not
  # steer this one's stopping.
  checkpoints.check_compatible(os.path.join(str(best_mngr.directory), str(latest)), saved, meta)
  values, steps = saved["val_score"], saved.get("best_steps", latest)
  if not isinstance(values, list):
    values, steps = [values], [steps]
  values = [math.inf if v is None else v for v in values]
  return values, steps, [0 if s is None else (step - s) // every for s in steps]


class _NoWriter:
  """A stand-in for the TensorBoard writer on the processes that do not write."""

  def __enter__(self):
    return self

  def __exit__(self, *args):
    return False

  def add_scalar(self, *args, **kwargs):
    pass

  def add_image(self, *args, **kwargs):
    pass


def _writer(workdir: str):
  if jax.process_index() != 0:
    return _NoWriter()
  return tensorboardX.SummaryWriter(os.path.join(workdir, "tensorboard"))


def _finite_or_none(value):
  return value if value is not None and math.isfinite(value) else None


def train(config: ml_collections.ConfigDict, workdir: str, splits: data.Splits):
  """Trains `config.method` on `splits.train` (normals only); returns (method, state, info).

  Resumes from `workdir/checkpoints`. With `config.train.early_stopping.eval_every`
  > 0, every that many steps the mean `early_stopping.score` of the validation
  normals is computed; the state with the lowest one is kept in `workdir/best`
  and returned, and training stops after `patience` evaluations without an
  improvement of `min_delta`. Test data plays no part. A method with a
  closed-form `fit` (no `train_step`) is fitted once and saved at step 0.

  With `config.ensemble`, `method` is the stacked method, `state` has a leading
  member axis, and every member has its own early stopping (its best state is
  kept once its patience has run out; training goes on while any member's has
  not) and `info` holds per-member lists.
  """
  run, state, info = train_run(config, workdir, splits)
  return run.method, state, info


def train_run(config: ml_collections.ConfigDict, workdir: str, splits: data.Splits):
  """`train`, returning the whole `Run` (method, members, keys, mesh) instead of the method."""
  t_start = time.perf_counter()
  configs.validate(config)
  prepare_workdir(workdir)
  input_shape = splits.train.x.shape[1:]
  num_train = len(splits.train.x)
  run = build(config, input_shape, num_train, data_sha256=data_digest(splits))
  method, batch_size, mesh, meta = run.method, run.batch_size, run.mesh, run.meta
  members, stacked, num_members = run.members, run.stacked, run.num_members
  if num_train < batch_size:
    raise ValueError(f"The training split has {num_train} normal samples, fewer "
                     f"than config.train.batch_size={batch_size}.")
  total_steps = 0 if method.train_step is None else num_train_steps(config, num_train)
  early = config.train.early_stopping
  early_on = early.eval_every > 0 and method.train_step is not None
  is_main = jax.process_index() == 0

  _, data_key, step_key, _ = run.keys
  train_x = sharding.put_train_data(mesh, splits.train.x, config.mesh.train_data)
  init_batch = sharding.put(mesh, splits.train.x[:batch_size])
  mngr = checkpoints.manager(workdir, config)
  # The checkpoint is checked against this run before anything is compiled or
  # written: a refused run leaves the workdir's config.json as it was.
  abstract_state, state_sharding = abstract_init(run, init_batch)
  start, state = checkpoints.restore_latest(mngr, abstract_state, meta, set_aside_corrupt=True)
  last_metrics = None
  if state is not None:
    if start > total_steps:
      raise checkpoints.IncompatibleCheckpointError(
          f"Checkpoint {mngr.directory}/{start} is at step {start}, past the {total_steps} "
          f"steps of this run (train.num_steps={config.train.num_steps}, train.num_epochs="
          f"{config.train.num_epochs}). Use a fresh --workdir, or at least {start} steps.")
    # The train metrics of the checkpoint's step: a run resumed at its last
    # step reports the same final_train_metrics as the uninterrupted one.
    last_metrics = _metrics_from_record(
        checkpoints.read_meta(mngr, start).get("train_metrics"), stacked)
    logging.info("Resumed from %s at step %d.", mngr.directory, start)
  else:
    state = init_state(run, init_batch, state_sharding)
  if is_main:
    reporting.write_json(os.path.join(workdir, "config.json"), config.to_dict())
  last_good = start

  if method.train_step is None:
    if start is None:
      state = sharding.reshard(method.fit(state, splits.train.x, splits.val.x), state_sharding)
      _check_finite_state(state, {}, 0, workdir, None, members)
      checkpoints.save(mngr, 0, state, meta, force=True)
    return run, state, {"steps": 0, "train_seconds": time.perf_counter() - t_start,
                        "final_train_metrics": None}

  best_mngr = checkpoints.manager(workdir, config, name="best", max_to_keep=1) if early_on else None
  step = int(np.max(sharding.to_host(state["step"])))
  best_values, best_steps, bad_evals = (
      _early_stopping_state(config, best_mngr, step, meta, num_members) if early_on
      else ([math.inf] * num_members, [None] * num_members, [0] * num_members))
  stopped = [early_on and b >= early.patience for b in bad_evals]
  stopped_at = step if early_on and all(stopped) else None
  best_state = None  # An ensemble's best members, gathered from several steps.
  if early_on and stacked and best_mngr.latest_step() is not None:
    best_state = checkpoints.restore_latest(best_mngr, abstract_state, meta)[1]

  progress = reporting.Progress(total_steps, first_step=step)
  t_train = time.perf_counter()
  with _writer(workdir) as writer, jax.set_mesh(mesh):
    step_fn = step_function(run, state_sharding, train_x.sharding, num_train)
    val_score_fn = _score_fn(run, state_sharding) if early_on else None
    keep_best = jax.jit(_select_members, out_shardings=state_sharding) if stacked else None
    while stopped_at is None and step < total_steps:
      step += 1
      state, metrics = step_fn(state, train_x, data_key, step_key)
      is_last = step == total_steps
      evaluate_now = early_on and step % early.eval_every == 0
      will_save = is_last or mngr.should_save(step) or evaluate_now
      if step % config.train.log_every == 0 or will_save:
        host_metrics = last_metrics = _fetch(metrics, stacked)
        _check_finite(host_metrics, step, workdir, last_good, members)
        if step % config.train.log_every == 0 or is_last:
          mean = {k: float(np.mean(v)) for k, v in host_metrics.items()}
          progress.report(step, mean)
          for k, v in mean.items():
            writer.add_scalar(f"train/{k}", v, step)
          for m in range(num_members if stacked else 0):
            for k, v in _member_metrics(host_metrics, m).items():
              writer.add_scalar(f"member{m}/train/{k}", v, step)
        if will_save:
          # The loss is that of the state before this step's update: check the
          # updated state itself, so that no checkpoint ever holds NaN / Inf.
          _check_finite_state(state, host_metrics, step, workdir, last_good, members)
      if evaluate_now:
        outs = _score(run, val_score_fn, state, splits.val.x, config.eval.batch_size)
        values = [float(np.mean(out[early.score])) for out in outs]
        improved = [not stopped[m] and values[m] < best_values[m] - early.min_delta
                    for m in range(num_members)]
        for m in range(num_members):
          writer.add_scalar(f"member{m}/val/mean_{early.score}" if stacked
                            else f"val/mean_{early.score}", values[m], step)
          if improved[m]:
            best_values[m], best_steps[m], bad_evals[m] = values[m], step, 0
          elif not stopped[m]:
            bad_evals[m] += 1
          stopped[m] = bad_evals[m] >= early.patience
        if any(improved):
          if stacked:
            best_state = keep_best(np.asarray(improved), state,
                                   state if best_state is None else best_state)
            checkpoints.save(best_mngr, step, best_state,
                             dict(meta, val_score=best_values, best_steps=best_steps), force=True)
          else:
            checkpoints.save(best_mngr, step, state, dict(meta, val_score=values[0]), force=True)
        if all(stopped):
          stopped_at = step
      # Every saved step fetched its metrics (`will_save`): they go with the state.
      if (is_last or mngr.should_save(step) or stopped_at is not None) and checkpoints.save(
          mngr, step, state, dict(meta, train_metrics=_metrics_record(last_metrics)),
          force=is_last or stopped_at is not None):
        last_good = step
    mngr.wait_until_finished()
  train_seconds = time.perf_counter() - t_train

  if stacked and last_metrics is not None:
    last_metrics = [_member_metrics(last_metrics, m) for m in range(num_members)]
  info = {"steps": step, "final_train_metrics": last_metrics, "train_seconds": train_seconds}
  if early_on:
    if stopped_at is not None:
      logging.info("Early stopping at step %d: mean validation %s has not improved for %d "
                   "evaluations since step(s) %s.", stopped_at, early.score, early.patience,
                   best_steps if stacked else best_steps[0])
    if stacked:
      if best_state is not None:
        state = best_state
      info.update(stopped_early=[bool(s) for s in stopped], best_step=best_steps,
                  best_val_score=[_finite_or_none(v) for v in best_values])
    else:
      if best_steps[0] is not None and best_steps[0] != step:
        _, state = checkpoints.restore_latest(best_mngr, abstract_state, meta)
      info.update(stopped_early=stopped_at is not None, best_step=best_steps[0],
                  best_val_score=_finite_or_none(best_values[0]))
  return run, state, info


def _select_members(mask, new, old):
  """Member m of `new` where mask[m], else of `old` (stacked states)."""
  def pick(n, o):
    return jnp.where(mask.reshape(mask.shape + (1,) * (n.ndim - 1)), n, o)
  return jax.tree.map(pick, new, old)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Loads the data, `train`s, then scores val and test and writes the report.

  Writes `config.json` before training (once the workdir's checkpoint, if any,
  is found compatible) and `results.json` / `results.md` at the end; returns
  the results. results.json records the config it was computed with
  (`workdir.finished_results` compares it before a grid reuses the run); a resumed run
  writes the same results.json as an uninterrupted one but for `wall_time_s`. For an ensemble the results hold every member's metrics and a
  table of mean +- std over seeds per grid point (`ensemble.summarize`).
  """
  t_start = time.perf_counter()
  configs.validate(config)
  prepare_workdir(workdir)
  splits = data.load(config.data, config.seed)
  run, state, info = train_run(config, workdir, splits)

  t_score = time.perf_counter()
  with jax.set_mesh(run.mesh):
    score_fn = _score_fn(run, sharding.state_sharding(run.mesh, state, run.stacked))
    val = _score(run, score_fn, state, splits.val.x, config.eval.batch_size)
    test = _score(run, score_fn, state, splits.test.x, config.eval.batch_size)
  member_metrics = [evaluation.evaluate(splits.test, t, v, config.eval.threshold_quantile)
                    for t, v in zip(test, val)]
  score_seconds = time.perf_counter() - t_score

  results = {
      "method": config.method,
      "seed": config.seed,
      "data": {k: v for k, v in splits.info.items() if k != "files"},  # File lists stay out.
      "sizes": {k: int(len(getattr(splits, k).x)) for k in ("train", "val", "test")},
      "steps": info["steps"],
      "batch_size": config.train.batch_size,
      "config": config.to_dict(),  # What `workdir.finished_results` compares before reusing the run.
  }
  early_keys = [k for k in ("stopped_early", "best_step", "best_val_score") if k in info]
  if not run.stacked:
    results.update({"final_train_metrics": info["final_train_metrics"],
                    **{k: info[k] for k in early_keys}, **member_metrics[0]})
  else:
    members = run.members
    member_results = []
    for m, metrics in enumerate(member_metrics):
      final = info["final_train_metrics"]
      member_results.append({
          "member": m, "seed": members.seeds[m], "point": dict(members.points[m]),
          "final_train_metrics": final[m] if final else None,
          **{k: info[k][m] for k in early_keys}, **metrics})
    results.update({
        "ensemble": {"seeds": sorted(set(members.seeds)), "grid": config.ensemble.to_dict()["grid"],
                     "members": members.size, "split_seed": config.seed},
        "members": member_results,
        "table": ensemble.summarize(member_results)})
  results.update({
      "wall_time_s": {"train": info["train_seconds"], "score": score_seconds,
                      "total": time.perf_counter() - t_start},
      "devices": f"{jax.device_count()} x {jax.devices()[0].device_kind}",
      "mesh": dict(run.mesh.shape),
      "jax_version": jax.__version__,
  })
  if jax.process_index() != 0:
    return results

  with _writer(workdir) as writer:
    for m, metrics in enumerate(member_metrics):
      prefix = f"member{m}/" if run.stacked else ""
      for name, values in metrics["metrics"].items():
        for k, v in values.items():
          writer.add_scalar(reporting.tb_tag(f"{prefix}test/{name}/{k}"), v, info["steps"])
    grid = evaluation.example_grid(splits.test, test[0], config.train.image_grid_size)
    if grid is not None:  # Member 0's for an ensemble.
      writer.add_image("test/input_recon_map", grid, info["steps"], dataformats="HWC")
      reporting.save_image(os.path.join(workdir, "reconstructions.png"), grid)
    # Member 0's figures for an ensemble (its table covers every member).
    walk = {}
    if run.method.generate is not None:  # Between two z ~ N(0, I) drawn from the score key.
      generate = jax.jit(run.method.generate)
      walk = {"generate_fn": lambda z: generate(state, z),
              "latents": jax.random.normal(run.keys[3], (2, config.model.nz))}
    results["figures"] = viz.write_run_figures(
        workdir, splits.test, test[0], val[0], member_metrics[0],
        member_metrics[0]["thresholds"]["score"], writer=writer, step=info["steps"], **walk)

  reporting.write_json(os.path.join(workdir, "results.json"), results)
  markdown = (ensemble.results_markdown(results) if run.stacked
              else reporting.results_markdown(results, results["figures"]))
  reporting.write_atomic(os.path.join(workdir, "results.md"), markdown)
  return results
