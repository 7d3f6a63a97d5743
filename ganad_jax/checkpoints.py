"""Orbax checkpoints of a method's state pytree, with a compatibility record.

Each step directory holds two items: `state` (the pytree) and `meta` (JSON:
method name, input shape, model config, and a SHA-256 digest of the state's
arrays; a training run adds its run record, see below, and the train metrics of
that step). Orbax writes a step into a temporary directory and renames it when
complete, so a killed save never replaces a good checkpoint. On restore, a
checkpoint that does not match this run is refused with a one-line error
naming what differs, and a corrupt one (unreadable, truncated, or whose
arrays no longer match their digest) is reported by name and skipped for the
next older one; a training run also moves it aside to `<step>.corrupt` so it
can write that step again.

What must match: every key of this run's record equals the checkpoint's
(method, input shape, model, optimiser, compute dtype, the method's section,
the ensemble's seeds and grid: "a different model"; the pretrained weights'
SHA-256, backbone and normalisation, `configs.weights_change`, named with the
file and both digests). A training run's record
also holds `run`: every config field except `configs.RESUME_NEUTRAL_FIELDS`,
and the SHA-256 of the data training sees (`data_sha256`); each differing
field is named ("was written for data.class_index=0, seed=0; this run has
data.class_index=3, seed=1"), and a checkpoint without a `run` record (older
ganad_jax) is refused. A `run` record written when every config held every
method's sections is compared on this run's method's fields. Readers that only score (`workdir.restore`) check
the model part.
"""

import hashlib
import os

from absl import logging
import jax
import numpy as np
import orbax.checkpoint as ocp

from ganad_jax import configs


class IncompatibleCheckpointError(ValueError):
  """The workdir's checkpoint was written by another model or another run (data, seed, ...)."""


def manager(workdir: str, config, name: str = "checkpoints",
            max_to_keep: int | None = None) -> ocp.CheckpointManager:
  """The manager of `workdir/name` (`checkpoints`, or `best` for early stopping)."""
  options = ocp.CheckpointManagerOptions(
      save_interval_steps=config.train.checkpoint_every,
      max_to_keep=max_to_keep or config.train.max_checkpoints,
      enable_async_checkpointing=False,  # Simpler failure semantics; saves are rare.
  )
  return ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), name),
                               options=options, item_names=("state", "meta"))


def digest(state) -> str:
  """SHA-256 of every array of `state` (dtype, shape and bytes, in tree order)."""
  h = hashlib.sha256()
  for leaf in jax.device_get(jax.tree.leaves(state)):  # States hold arrays only, no PRNG keys.
    leaf = np.asarray(leaf)
    h.update(f"{leaf.dtype.str}{leaf.shape}".encode())
    h.update(np.ascontiguousarray(leaf).tobytes())
  return h.hexdigest()


def save(mngr: ocp.CheckpointManager, step: int, state, meta: dict, force: bool = False) -> bool:
  """Saves `state` at `step` if the interval (or `force`) says so; returns whether it did."""
  if not (force or mngr.should_save(step)):
    return False
  meta = dict(meta, digest=digest(state))  # Orbax's OCDBT files do not checksum array bytes.
  return mngr.save(step, args=ocp.args.Composite(
      state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=force)


def read_meta(mngr: ocp.CheckpointManager, step: int) -> dict:
  """The JSON record saved with `step`."""
  return mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]


def _set_aside(path: str) -> None:
  target, n = f"{path}.corrupt", 1
  while os.path.exists(target):
    target, n = f"{path}.corrupt{n}", n + 1
  os.rename(path, target)
  logging.warning("Moved %s to %s so that this run can write step %s again.",
                  path, target, os.path.basename(path))


def restore_latest(mngr: ocp.CheckpointManager, abstract_state, meta: dict,
                   set_aside_corrupt: bool = False):
  """Returns (step, state) of the newest readable checkpoint, or (None, None) if none.

  Args:
    mngr: the run's checkpoint manager.
    abstract_state: pytree of jax.ShapeDtypeStruct (from `jax.eval_shape(init, ...)`).
    meta: this run's compatibility record; a checkpoint whose record differs raises.
    set_aside_corrupt: rename corrupt checkpoints newer than the restored one to
      `<step>.corrupt` (kept for inspection), so that a training run can save
      those steps again. Read-only users (evaluation) leave them in place.

  Raises:
    IncompatibleCheckpointError: the newest checkpoint belongs to another model.
  """
  steps = sorted(mngr.all_steps(), reverse=True)
  corrupt = []
  result = _restore_newest_good(mngr, steps, abstract_state, meta, corrupt)
  if set_aside_corrupt and corrupt:
    for path in corrupt:
      _set_aside(path)
    mngr.reload()
  return result


def _restore_newest_good(mngr, steps, abstract_state, meta, corrupt):
  for step in steps:
    path = os.path.join(str(mngr.directory), str(step))
    try:
      saved_meta = read_meta(mngr, step)
    except Exception as e:  # pylint: disable=broad-except
      logging.error("Checkpoint %s is unreadable (%s: %s); trying an older one.",
                    path, type(e).__name__, str(e).splitlines()[0] if str(e) else "")
      corrupt.append(path)
      continue
    check_compatible(path, saved_meta, meta)
    try:
      restored = mngr.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract_state)))
    except Exception as e:  # pylint: disable=broad-except
      logging.error("Checkpoint %s is corrupt or truncated (%s: %s); trying an older one.",
                    path, type(e).__name__, str(e).splitlines()[0] if str(e) else "")
      corrupt.append(path)
      continue
    if "digest" in saved_meta and digest(restored["state"]) != saved_meta["digest"]:
      logging.error("Checkpoint %s is corrupt: its arrays do not match the digest saved with "
                    "them; trying an older one.", path)
      corrupt.append(path)
      continue
    if step != steps[0]:
      logging.warning("Resuming from older checkpoint %s: newer ones were unreadable.", path)
    return step, restored["state"]
  if steps:
    logging.warning("No readable checkpoint in %s; starting from scratch.", mngr.directory)
  return None, None


def check_compatible(path: str, saved: dict, meta: dict) -> None:
  """Raises IncompatibleCheckpointError unless `saved` matches every key of `meta`."""
  weights = configs.weights_change(saved.get("weights"), meta.get("weights"))
  if weights:
    raise IncompatibleCheckpointError(
        f"Checkpoint {path} was computed with {weights}. Use a fresh --workdir, or the weights "
        "that wrote it.")
  mismatch = {k: (saved.get(k), v) for k, v in meta.items()
              if k not in ("run", "weights") and saved.get(k) != v}
  if mismatch:
    details = "; ".join(f"{k}: checkpoint has {a!r}, this run has {b!r}"
                        for k, (a, b) in mismatch.items())
    raise IncompatibleCheckpointError(
        f"Checkpoint {path} was written by a different model ({details}). "
        "Use a fresh --workdir, or the config that wrote it.")
  if "run" not in meta:
    return
  if "run" not in saved:
    raise IncompatibleCheckpointError(
        f"Checkpoint {path} has no record of the data, seed and settings it was trained with "
        "(written by an older ganad_jax), so this run cannot be checked against it. "
        "Use a fresh --workdir.")
  # Records written when a config held every method's sections: only this
  # method's count (configs/methods/).
  saved_run = {k: v for k, v in saved["run"].items()
               if not configs.is_foreign_field(k, meta["method"])}
  fields = configs.differing_fields(saved_run, meta["run"])
  if len(fields) > 1 and "data_sha256" in fields:
    fields.remove("data_sha256")  # Other data settings: the digest differs as a consequence.
  if fields:
    raise IncompatibleCheckpointError(
        f"Checkpoint {path} was written for {configs.describe(saved_run, fields)}; "
        f"this run has {configs.describe(meta['run'], fields)}. "
        "Use a fresh --workdir, or the config that wrote it.")
