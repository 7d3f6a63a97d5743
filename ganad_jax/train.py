"""`train_and_evaluate(config, workdir)`: the one training loop every method uses.

The training set lives on the device; each step gathers its batch there from a
per-epoch permutation drawn with `fold_in(data_key, epoch)`, and gets its own
key `fold_in(step_key, step)`. Both depend only on (seed, step), so a resumed
run replays exactly the batches and randomness of an uninterrupted one.
"""

import json
import math
import os
import time

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from PIL import Image
import tensorboardX

from ganad_jax import checkpoints
from ganad_jax import configs
from ganad_jax import data
from ganad_jax import evaluation
from ganad_jax import methods
from ganad_jax import reporting


class DivergenceError(FloatingPointError):
  """A training loss became NaN or Inf."""


def batch_indices(data_key, step, num_examples: int, batch_size: int):
  """Indices of the batch for `step`: epoch-wise permutations, remainder dropped."""
  steps_per_epoch = num_examples // batch_size
  epoch, offset = step // steps_per_epoch, step % steps_per_epoch
  perm = jax.random.permutation(jax.random.fold_in(data_key, epoch), num_examples)
  return jax.lax.dynamic_slice_in_dim(perm, offset * batch_size, batch_size)


def make_train_step(method, batch_size: int):
  """Wraps `method.train_step` so that it gathers its own batch on the device."""

  def step_fn(state, train_x, data_key, step_key):
    idx = batch_indices(data_key, state["step"], train_x.shape[0], batch_size)
    return method.train_step(state, train_x[idx], jax.random.fold_in(step_key, state["step"]))

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
    probe = os.path.join(workdir, ".write_test")
    with open(probe, "w", encoding="utf-8") as f:
      f.write("ok")
    os.remove(probe)
  except OSError as e:
    raise PermissionError(f"workdir {workdir!r} is not writable: {e.strerror}") from None


def checkpoint_meta(config, input_shape) -> dict:
  """What a checkpoint must match to be restored into this run."""
  # The optimiser's settings live in its restored state (inject_hyperparams),
  # so a resume with other settings would silently ignore them: refuse it.
  meta = {"method": config.method, "input_shape": list(input_shape),
          "model": config.model.to_dict(), "optim": config.optim.to_dict(),
          "compute_dtype": config.compute_dtype}
  return json.loads(json.dumps(meta))  # As it reads back from disk: tuples become lists.


def _fetch(metrics) -> dict[str, float]:
  return {k: float(v) for k, v in jax.device_get(metrics).items()}


def _kept(workdir: str, last_good) -> str:
  return (f"the last good checkpoint (step {last_good}) is kept in {workdir}/checkpoints"
          if last_good is not None else "no checkpoint was written")


def _check_finite(metrics: dict[str, float], step: int, workdir: str, last_good) -> None:
  bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
  if bad:
    raise DivergenceError(
        f"Training diverged at step {step}: {', '.join(f'{k}={v}' for k, v in bad.items())}; "
        f"{_kept(workdir, last_good)}. Lower config.optim.lr or check the data.")


def _check_finite_state(state, metrics: dict[str, float], step: int, workdir: str,
                        last_good) -> None:
  leaves = jax.tree_util.tree_flatten_with_path(state)[0]
  bad = [jax.tree_util.keystr(path, simple=True, separator="/") for path, x in leaves
         if jnp.issubdtype(x.dtype, jnp.inexact) and not np.isfinite(jax.device_get(x)).all()]
  if bad:
    shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
    raise DivergenceError(
        f"Training diverged at step {step}: loss={metrics.get('loss')} but the updated state "
        f"has non-finite values in {shown}; {_kept(workdir, last_good)}. "
        "Lower config.optim.lr or check the data.")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains `config.method` on the normal training split, then scores val and test.

  Resumes automatically from `workdir/checkpoints`. Writes `config.json` before
  training (once the workdir's checkpoint, if any, is found compatible) and
  `results.json` / `results.md` at the end; returns the results.
  """
  t_start = time.perf_counter()
  configs.validate(config)
  prepare_workdir(workdir)
  splits = data.load(config.data, config.seed)
  input_shape = splits.train.x.shape[1:]
  method = methods.make(config, input_shape)
  batch_size = config.train.batch_size
  if len(splits.train.x) < batch_size:
    raise ValueError(f"The training split has {len(splits.train.x)} normal samples, fewer "
                     f"than config.train.batch_size={batch_size}.")
  total_steps = num_train_steps(config, len(splits.train.x))

  init_key, data_key, step_key, score_key = root_keys(config.seed)
  train_x = jax.device_put(splits.train.x)
  mngr = checkpoints.manager(workdir, config)
  meta = checkpoint_meta(config, input_shape)
  # The checkpoint is checked against this run before anything is compiled or
  # written: a refused run leaves the workdir's config.json as it was.
  abstract_state = jax.eval_shape(method.init, init_key, train_x[:batch_size])
  start, state = checkpoints.restore_latest(mngr, abstract_state, meta, set_aside_corrupt=True)
  if state is not None:
    logging.info("Resumed from %s at step %d.", mngr.directory, start)
  else:
    state = jax.jit(method.init)(init_key, train_x[:batch_size])
  reporting.write_json(os.path.join(workdir, "config.json"), config.to_dict())
  last_good, last_metrics = start, None

  step_fn = jax.jit(make_train_step(method, batch_size), donate_argnums=0)
  progress = reporting.Progress(total_steps, first_step=int(state["step"]))
  with tensorboardX.SummaryWriter(os.path.join(workdir, "tensorboard")) as writer:
    t_train = time.perf_counter()
    for step in range(int(state["step"]) + 1, total_steps + 1):
      state, metrics = step_fn(state, train_x, data_key, step_key)
      is_last = step == total_steps
      will_save = is_last or mngr.should_save(step)
      if step % config.train.log_every == 0 or will_save:
        host_metrics = last_metrics = _fetch(metrics)
        _check_finite(host_metrics, step, workdir, last_good)
        if step % config.train.log_every == 0 or is_last:
          progress.report(step, host_metrics)
          for k, v in host_metrics.items():
            writer.add_scalar(f"train/{k}", v, step)
        if will_save:
          # The loss is that of the state before this step's update: check the
          # updated state itself, so that no checkpoint ever holds NaN / Inf.
          _check_finite_state(state, host_metrics, step, workdir, last_good)
          if checkpoints.save(mngr, step, state, meta, force=is_last):
            last_good = step
    mngr.wait_until_finished()
    train_seconds = time.perf_counter() - t_train

    t_score = time.perf_counter()
    score_fn = jax.jit(method.score)
    val = evaluation.score_split(score_fn, state, splits.val.x, score_key, config.eval.batch_size)
    test = evaluation.score_split(score_fn, state, splits.test.x, score_key, config.eval.batch_size)
    metrics = evaluation.evaluate(splits.test, test, val, config.eval.threshold_quantile)
    score_seconds = time.perf_counter() - t_score

    for name, values in metrics["metrics"].items():
      for k, v in values.items():
        writer.add_scalar(reporting.tb_tag(f"test/{name}/{k}"), v, total_steps)
    grid = evaluation.example_grid(splits.test, test, config.train.image_grid_size)
    if grid is not None:
      writer.add_image("test/input_recon_map", grid, total_steps, dataformats="HWC")
      Image.fromarray(grid).save(os.path.join(workdir, "reconstructions.png"))

  results = {
      "method": config.method,
      "seed": config.seed,
      "data": {k: v for k, v in splits.info.items() if k != "files"},  # File lists stay out.
      "sizes": {k: int(len(getattr(splits, k).x)) for k in ("train", "val", "test")},
      "steps": total_steps,
      "batch_size": batch_size,
      "final_train_metrics": last_metrics,
      **metrics,
      "wall_time_s": {"train": train_seconds, "score": score_seconds,
                      "total": time.perf_counter() - t_start},
      "devices": f"{jax.device_count()} x {jax.devices()[0].device_kind}",
      "jax_version": jax.__version__,
  }
  reporting.write_json(os.path.join(workdir, "results.json"), results)
  reporting.write_atomic(os.path.join(workdir, "results.md"), reporting.results_markdown(results))
  return results


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a workdir was trained with (its `config.json`), checked against the base."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: {workdir!r} is not a ganad_jax workdir.")
  with open(path, encoding="utf-8") as f:
    saved = json.load(f)
  config = configs.base_config()
  _update(config, saved, "config")
  return config


def _update(config, values: dict, prefix: str) -> None:
  for key, value in values.items():
    if key not in config:
      raise ValueError(f"{prefix}.{key} in config.json is not a known config field.")
    if isinstance(config[key], ml_collections.ConfigDict):
      _update(config[key], value, f"{prefix}.{key}")
    else:
      config[key] = tuple(value) if isinstance(value, list) else value


def restore_trained(workdir: str, config: ml_collections.ConfigDict, input_shape):
  """Builds the method for `input_shape` and restores the workdir's newest good checkpoint."""
  method = methods.make(config, input_shape)
  init_key, _, _, score_key = root_keys(config.seed)
  example = jax.ShapeDtypeStruct((config.train.batch_size, *input_shape), jax.numpy.float32)
  abstract_state = jax.eval_shape(method.init, init_key, example)
  mngr = checkpoints.manager(workdir, config)
  step, state = checkpoints.restore_latest(mngr, abstract_state,
                                           checkpoint_meta(config, input_shape))
  if state is None:
    raise FileNotFoundError(f"No checkpoint in {mngr.directory}: train first.")
  return method, state, step, score_key
