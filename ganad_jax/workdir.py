"""A trained workdir read back: its config (`load_config`) and its state (`restore`).

Every consumer of a workdir goes through `restore`: experiments/evaluate.py,
`Detector.load` and the Gaussian scorer's workdir features. A workdir trained
with `config.ensemble` holds ONE stacked state (a leading member axis of size
M on every leaf, see `ganad_jax.ensemble`); `restore` gives either all members
(the stacked state and method), or member k alone as the single run it equals
(`ensemble.member_config`), or, for a consumer that needs one model, a
one-line refusal naming the workdir, its number of members and how to pick one.
A restored run scores through its `Trained.scorer` (`scoring.Scorer`: the
mesh, the members, the patch protocol's tiles and the run's score key).
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
from ganad_jax import scoring
from ganad_jax import sharding
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
    run: its `runner.Run` (for one member, that of the single run it equals).
    state: the state pytree; with `members`, every leaf has a leading (M,) axis.
    step: the step of the restored checkpoint.
    member: k when this is member k of an ensemble workdir, else None.
    scorer: the run's `scoring.Scorer` (batches of `config.eval.batch_size`):
      `scorer.members(state, x)` gives the outputs per member.
  """
  config: ml_collections.ConfigDict
  run: runner.Run
  state: dict
  step: int
  member: int | None
  scorer: scoring.Scorer

  @property
  def method(self) -> base.Method:
    """The method; the stacked method (`ensemble.make`) when `members` is set."""
    return self.run.method

  @property
  def members(self) -> ensemble.Members | None:
    """The ensemble's members when the state is stacked, else None."""
    return self.run.members

  @property
  def stacked(self) -> bool:
    return self.run.stacked

  @property
  def score_key(self) -> jax.Array:
    """The key every scored batch gets; (M,) keys with `members`."""
    return self.run.keys.score


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
      ensemble workdir with `member` None and `pick_with` set.
    checkpoints.IncompatibleCheckpointError: the checkpoint belongs to another
      model than the config describes.
  """
  if config is None:
    config = load_config(workdir)
  input_shape = tuple(input_shape)
  run = runner.build(config, input_shape)
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
  abstract_state, state_sharding = runner.abstract_init(run, example)
  best = config.train.early_stopping.eval_every > 0 and run.method.train_step is not None
  mngr = checkpoints.manager(workdir, config, name="best" if best else "checkpoints")
  step, state = checkpoints.restore_latest(mngr, abstract_state, run.meta)
  if state is None:
    raise FileNotFoundError(f"No checkpoint in {mngr.directory}: train first.")
  if members is None or member is None:
    return Trained(config, run, state, step, None,
                   scoring.Scorer(run, config.eval.batch_size, state_sharding))
  member = int(member)
  single = ensemble.member_config(config, members.seeds[member], members.points[member])
  single_run = runner.build(single, input_shape)
  single_state = ensemble.member_state(state, member)
  single_sharding = sharding.state_sharding(single_run.mesh, single_state, False)
  return Trained(single, single_run, sharding.reshard(single_state, single_sharding), step,
                 member, scoring.Scorer(single_run, single.eval.batch_size, single_sharding))


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
  field except `configs.RESULT_NEUTRAL_FIELDS`, and its pretrained weights
  (the file's SHA-256, backbone, normalisation: results.json's `weights`)
  are those `config` would load now. A started run (config.json
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
    IncompatibleResultsError: the workdir's finished run has another config
      (the message names every differing field with both values) or other
      pretrained weights (naming the file and both digests).
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
  weights = None if results is None or fields else configs.weights_change(
      results.get("weights"), methods.weights_record(config))
  if weights:  # The same config, but the weight file changed since (or is not recorded).
    if overwrite:
      logging.warning("Deleting %s: its run was computed with %s.", workdir, weights)
      shutil.rmtree(workdir)
      return None
    raise IncompatibleResultsError(
        f"{results_path} was computed with {weights}. Use another --workdir, or delete "
        f"{workdir} to run it again (or pass --overwrite).")
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
