"""Orbax checkpoints of a method's state pytree, with a compatibility record.

Each step directory holds two items: `state` (the pytree) and `meta` (JSON:
method name, input shape, model config). Orbax writes a step into a temporary
directory and renames it when complete, so a killed save never replaces a
good checkpoint. On restore, a checkpoint that does not match this run (other
method or architecture) is refused with a clear error, and a corrupt one is
reported by name and skipped for the next older one.
"""

import os

from absl import logging
import jax
import orbax.checkpoint as ocp


class IncompatibleCheckpointError(ValueError):
  """The workdir's checkpoint was written by another method or architecture."""


def manager(workdir: str, config) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(
      save_interval_steps=config.train.checkpoint_every,
      max_to_keep=config.train.max_checkpoints,
      enable_async_checkpointing=False,  # Simpler failure semantics; saves are rare.
  )
  return ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), "checkpoints"),
                               options=options, item_names=("state", "meta"))


def save(mngr: ocp.CheckpointManager, step: int, state, meta: dict, force: bool = False) -> bool:
  return mngr.save(step, args=ocp.args.Composite(
      state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=force)


def restore_latest(mngr: ocp.CheckpointManager, abstract_state, meta: dict):
  """Returns (step, state) of the newest readable checkpoint, or (None, None) if none.

  Args:
    mngr: the run's checkpoint manager.
    abstract_state: pytree of jax.ShapeDtypeStruct (from `jax.eval_shape(init, ...)`).
    meta: this run's compatibility record; a checkpoint whose record differs raises.

  Raises:
    IncompatibleCheckpointError: the newest checkpoint belongs to another model.
  """
  steps = sorted(mngr.all_steps(), reverse=True)
  for step in steps:
    path = os.path.join(str(mngr.directory), str(step))
    try:
      saved_meta = mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    except Exception as e:  # pylint: disable=broad-except
      logging.error("Checkpoint %s is unreadable (%s: %s); trying an older one.",
                    path, type(e).__name__, str(e).splitlines()[0] if str(e) else "")
      continue
    mismatch = {k: (saved_meta.get(k), v) for k, v in meta.items() if saved_meta.get(k) != v}
    if mismatch:
      details = "; ".join(f"{k}: checkpoint has {a!r}, this run has {b!r}"
                          for k, (a, b) in mismatch.items())
      raise IncompatibleCheckpointError(
          f"Checkpoint {path} was written by a different model ({details}). "
          "Use a fresh --workdir, or the config that wrote it.")
    try:
      restored = mngr.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract_state)))
    except Exception as e:  # pylint: disable=broad-except
      logging.error("Checkpoint %s is corrupt or truncated (%s: %s); trying an older one.",
                    path, type(e).__name__, str(e).splitlines()[0] if str(e) else "")
      continue
    if step != steps[0]:
      logging.warning("Resuming from older checkpoint %s: newer ones were unreadable.", path)
    return step, restored["state"]
  if steps:
    logging.warning("No readable checkpoint in %s; starting from scratch.", mngr.directory)
  return None, None


def abstract(state):
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state)
