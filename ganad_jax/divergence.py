"""Failing fast when training diverges: `DivergenceError` and the checks that raise it.

The training loop (`ganad_jax.train`) checks the train metrics it fetches
(`check_metrics`) and, before every checkpoint, the state itself
(`check_state`), so that no checkpoint ever holds NaN / Inf. The message names
the step, the non-finite losses or state leaves (per ensemble member, with
its seed and grid point), and where the last good checkpoint is kept. Only a
trained method's message suggests a lower learning rate: a closed-form fit
(`check_state` with no metrics) has none, and its message says so.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

from ganad_jax import ensemble
from ganad_jax import sharding


class DivergenceError(FloatingPointError):
  """A training loss, or the trained state, became NaN or Inf."""


def _kept(workdir: str, last_good) -> str:
  return (f"the last good checkpoint (step {last_good}) is kept in {workdir}/checkpoints"
          if last_good is not None else "no checkpoint was written")


def _shown(names: list[str]) -> str:
  return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def check_metrics(metrics: dict, step: int, workdir: str, last_good: int | None,
                  members: ensemble.Members | None = None) -> None:
  """Raises DivergenceError if a fetched train metric is NaN / Inf.

  Args:
    metrics: host metrics: floats, or (M,) arrays for an ensemble.
    step: the step they belong to.
    workdir: the run's workdir (named in the message).
    last_good: the step of the last checkpoint written, or None.
    members: the ensemble's members, or None for a single run.
  """
  if members is None:
    bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
    if bad:
      raise DivergenceError(
          f"Training diverged at step {step}: {', '.join(f'{k}={v}' for k, v in bad.items())}; "
          f"{_kept(workdir, last_good)}. Lower config.optim.lr or check the data.")
    return
  bad = {}
  for m in range(members.size):
    values = {k: float(v[m]) for k, v in metrics.items() if not math.isfinite(v[m])}
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


def check_state(state, metrics: dict, step: int, workdir: str, last_good: int | None,
                members: ensemble.Members | None = None) -> None:
  """Raises DivergenceError if a floating leaf of `state` holds NaN / Inf.

  Args:
    state: the state pytree (a leading (M,) member axis for an ensemble).
    metrics: the host metrics of the step (for the losses in the message),
      or {} (a closed-form fit: a method without `train_step`, whose message
      names the fit, not a learning rate).
    step, workdir, last_good, members: as in `check_metrics`.
  """
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
  if not metrics:  # A closed-form fit: no step, no loss, no learning rate to lower.
    where = ("" if members is None else f" in {len(bad)} of {members.size} ensemble members")
    shown = _shown(bad[None]) if members is None else "; ".join(
        f"member {m} ({members.label(m)}): {_shown(paths)}" for m, paths in list(bad.items())[:3])
    raise DivergenceError(
        f"The closed-form fit{where} gave non-finite values in {shown}; "
        f"{_kept(workdir, last_good)}. The method has no training steps or learning rate: "
        "check the training data (constant or repeated inputs) and the method's fit settings "
        "(a covariance regulariser such as padim.eps).")
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
