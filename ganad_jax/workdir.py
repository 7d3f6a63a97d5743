"""A trained workdir read back: its config (`load_config`) and its state (`restore`).

Every consumer of a workdir goes through `restore`: experiments/evaluate.py,
`Detector.load` and the Gaussian scorer's workdir features. A workdir trained
with `config.ensemble` holds ONE stacked state (a leading member axis of size
M on every leaf, see `ganad_jax.ensemble`); `restore` gives either all members
(the stacked state and method), or member k alone as the single run it equals
(`ensemble.member_config`), or, for a consumer that needs one model, a
one-line refusal naming the workdir, its number of members and how to pick one.
"""

import json
import os
import shutil
from typing import NamedTuple

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ganad_jax import checkpoints
from ganad_jax import configs
from ganad_jax import ensemble
from ganad_jax import methods
from ganad_jax import runner
from ganad_jax.methods import base
from ganad_jax.methods import runs


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a workdir was trained with (its `config.json`), checked against its method's.

  Raises:
    FileNotFoundError: `workdir/config.json` does not exist.
    ValueError: it holds a field that no config has (`config_from_dict`).
  """
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: {workdir!r} is not a ganad_jax workdir.")
  with open(path, encoding="utf-8") as f:
    try:
      saved = json.load(f)
    except json.JSONDecodeError as e:
      raise ValueError(f"{path} is not valid JSON: {e}.") from None
  return config_from_dict(saved, source=path)


def config_from_dict(values: dict, source: str = "config.json") -> ml_collections.ConfigDict:
  """A config from its `to_dict()` / JSON form, every field checked against its method's.

  The sections of other methods that config.json files written before a config
  held its own method's sections only are skipped (`configs.from_dict`).

  Raises:
    ValueError: an unknown method, or a field of `values` (read from `source`)
      that no config has.
  """
  return configs.from_dict(values, source)


def _members_text(members: ensemble.Members) -> str:
  shown = "; ".join(f"{m}: {members.label(m)}" for m in range(min(members.size, 3)))
  more = f"; and {members.size - 3} more" if members.size > 3 else ""
  return f"{members.size} members ({shown}{more})"


class Trained(NamedTuple):
  """A restored workdir.

  Attributes:
    config: the config it was trained with; for one member of an ensemble, that
      member's single-run config (its seed and grid point, no ensemble).
    method: the method; the stacked method (`ensemble.make`) when `members` is set.
    state: the state pytree; with `members`, every leaf has a leading (M,) axis.
    step: the step of the restored checkpoint.
    score_key: the key `score` gets; (M,) keys with `members`.
    members: the ensemble's members when the state is stacked, else None.
    member: k when this is member k of an ensemble workdir, else None.
  """
  config: ml_collections.ConfigDict
  method: base.Method
  state: dict
  step: int
  score_key: jax.Array
  members: ensemble.Members | None
  member: int | None

  @property
  def stacked(self) -> bool:
    return self.members is not None

  def score_fn(self):
    """jit of score(state, batch (N, ...), key) -> outputs with N leading.

    A stacked state's outputs come back batch-major (N, M, ...), the layout
    `evaluation.score_split` pads and slices; `per_member` splits them.
    """
    if not self.stacked:
      return jax.jit(self.method.score)

    def score(state, batch, key):
      return jax.tree.map(lambda a: jnp.moveaxis(a, 0, 1), self.method.score(state, batch, key))
    return jax.jit(score)

  def per_member(self, outputs: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Outputs of `score_fn` over a split, one dict per member (one for a single state)."""
    if not self.stacked:
      return [outputs]
    return [{k: v[:, m] for k, v in outputs.items()} for m in range(self.members.size)]


def restore(workdir: str, input_shape, member: int | None = None,
            config: ml_collections.ConfigDict | None = None,
            pick_with: str | None = None) -> Trained:
  """Builds the method for `input_shape` and restores the workdir's newest good checkpoint.

  With early stopping the trained model is the best state (`workdir/best`),
  else the last one (`workdir/checkpoints`).

  Args:
    workdir: a workdir written by `train.train_and_evaluate` or `Detector.fit`.
    input_shape: one example's shape, (H, W, C) or (F,).
    member: for an ensemble workdir, k in [0, M) restores member k alone: its
      single-run method and config, its (unstacked) state and score key. None
      restores what the workdir holds: a single run, or all M members stacked.
    config: the workdir's config, if already loaded (default `load_config`).
    pick_with: for a consumer that needs one model: how its caller chooses a
      member (e.g. "--member=k"); an ensemble workdir with `member` None is then
      refused with a message that says so.

  Returns:
    A `Trained`; `members` is set only when the state is stacked.

  Raises:
    FileNotFoundError: no config.json, or no checkpoint (not trained yet).
    ValueError: `member` given for a single-run workdir or out of range; an
      ensemble workdir with `member` None and `pick_with` set; a workdir of
      the patch protocol (`Trained` scores whole images).
    checkpoints.IncompatibleCheckpointError: the checkpoint belongs to another
      model than the config describes.
  """
  if config is None:
    config = load_config(workdir)
  input_shape = tuple(input_shape)
  run = runner.build(config, input_shape)
  if run.patch is not None:  # Its nets take crops; only `runner.score` tiles and stitches.
    raise ValueError(f"workdir {workdir!r} was trained with the patch protocol (patch.size="
                     f"{run.patch.size}): restoring it to score whole images is not supported; "
                     "its results.json holds the scores of its tiles stitched back.")
  members = run.members
  if members is None and member is not None:
    raise ValueError(f"member={member}: workdir {workdir!r} is a single run, not an ensemble "
                     "(it has no members to choose from).")
  if members is not None:
    if member is None and pick_with:
      raise ValueError(f"workdir {workdir!r} holds an ensemble of {_members_text(members)}; "
                       f"choose one with {pick_with} (0 <= k < {members.size}).")
    if member is not None and not (isinstance(member, (int, np.integer)) and
                                   0 <= member < members.size):
      raise ValueError(f"member={member!r} is out of range: workdir {workdir!r} holds an "
                       f"ensemble of {members.size} members (0 <= member < {members.size}).")
  example = jax.ShapeDtypeStruct((run.batch_size, *input_shape), jnp.float32)
  abstract_state, _ = runner.abstract_init(run, example)
  best = config.train.early_stopping.eval_every > 0 and run.method.train_step is not None
  mngr = checkpoints.manager(workdir, config, name="best" if best else "checkpoints")
  step, state = checkpoints.restore_latest(mngr, abstract_state, run.meta)
  if state is None:
    raise FileNotFoundError(f"No checkpoint in {mngr.directory}: train first.")
  if members is None or member is None:
    return Trained(config, run.method, state, step, run.keys.score, members, None)
  member = int(member)
  single = ensemble.member_config(config, members.seeds[member], members.points[member])
  return Trained(single, methods.make(single, input_shape), ensemble.member_state(state, member),
                 step, runner.root_keys(members.seeds[member]).score, None, member)


runs.provide(restore)  # The Gaussian's features='workdir' read a run through it.


class IncompatibleResultsError(ValueError):
  """A workdir holds a finished (or started) run of another config."""


def finished_results(workdir: str, config: ml_collections.ConfigDict,
                     overwrite: bool = False) -> dict | None:
  """The results of `workdir` if they are `config`'s run, else None (run it).

  What grids and sweeps (`ganad_jax.benchmark`, `ganad_jax.sweep`) call before
  reusing a run. A finished run (`results.json`) is reused only when the config
  it was computed with (the `config` in its results.json; for results written
  before that was recorded, the workdir's config.json) equals `config` in every
  field except `configs.RESULT_NEUTRAL_FIELDS`. A started run (config.json
  only) is left to `train_and_evaluate`, which resumes its checkpoint only for
  the same run (`checkpoint_meta`).

  Args:
    workdir: the run's directory (need not exist).
    config: the config this run would be trained with.
    overwrite: delete (with a warning) a workdir that holds another config's
      run, finished or started, and return None, instead of raising.

  Returns:
    The stored results, or None when the run is still to do.

  Raises:
    IncompatibleResultsError: the workdir's finished run has another config;
      the message names every differing field with both values.
  """
  results_path = os.path.join(workdir, "results.json")
  config_path = os.path.join(workdir, "config.json")
  if os.path.exists(results_path):
    with open(results_path, encoding="utf-8") as f:
      try:
        results = json.load(f)
      except json.JSONDecodeError as e:
        raise IncompatibleResultsError(f"{results_path} is not valid JSON ({e}): it cannot be "
                                       f"checked for reuse. Delete {workdir} or use another "
                                       "--workdir (or pass --overwrite).") from None
    if "config" in results:
      source, stored = results_path, config_from_dict(results["config"])
    else:
      source, stored = config_path, load_config(workdir)
    neutral = configs.RESULT_NEUTRAL_FIELDS
  elif overwrite and os.path.exists(config_path):
    source, stored, results = config_path, load_config(workdir), None
    neutral = configs.RESUME_NEUTRAL_FIELDS
  else:
    return None
  saved, current = configs.run_record(stored, neutral), configs.run_record(config, neutral)
  fields = configs.differing_fields(saved, current)
  if not fields:
    return results
  if overwrite:
    logging.warning("Deleting %s: its run was made with %s; this run has %s.", workdir,
                    configs.describe(saved, fields), configs.describe(current, fields))
    shutil.rmtree(workdir)
    return None
  raise IncompatibleResultsError(
      f"{source} was computed with {configs.describe(saved, fields)}; this run has "
      f"{configs.describe(current, fields)}. Use another --workdir, or delete {workdir} "
      "to run it again (or pass --overwrite).")
