r"""Re-scores a trained workdir's newest checkpoint on one split of its data.

  python experiments/evaluate.py --workdir=/tmp/ae_digits --split=test

The data are rebuilt from the workdir's config.json (same source, protocol and
seed, hence the same split); `--data_path` points the same config at another
copy of the data. Normal-only splits (train, val) report score statistics.

Scoring can be long (AnoGAN searches z for every sample): finished batches are
kept in WORKDIR/score_cache/<split>, so a killed evaluation re-run with the
same command resumes where it stopped, with identical scores.

Scoring is the workdir's `Trained.scorer` (`ganad_jax.scoring.Scorer`, as in
training: the mesh, the members, the patch protocol's tiles) and the numbers
are built by `run_report.member_results`, the function training's results.json
uses. An ensemble workdir (trained with config.ensemble) is scored member by
member: the output lists every member's metrics (`members`) and the table of
mean +- std over seeds per grid point, as training's results.json does. `--member=k`
scores member k alone, as the single run it equals (its seed, its grid point).

Refused inputs (no such workdir, a member out of range, ...) print one line,
`error: <message>`, and exit with status 1 (`ganad_jax.cli`).
"""

import json
import os

from absl import flags
import numpy as np

from ganad_jax import cli
from ganad_jax import data
from ganad_jax import ensemble
from ganad_jax import evaluation
from ganad_jax import run_outputs
from ganad_jax import run_report
from ganad_jax import workdir as workdir_lib

_WORKDIR = flags.DEFINE_string("workdir", None, "A workdir written by experiments/train.py.")
_SPLIT = flags.DEFINE_enum("split", "test", ["train", "val", "test"], "Which split to score.")
_MEMBER = flags.DEFINE_integer("member", None, "Ensemble workdirs: score member k alone "
                               "(as the single run it equals); default: every member.")
_DATA_PATH = flags.DEFINE_string("data_path", None, "Overrides config.data.path.")
_JSON_OUT = flags.DEFINE_string("json_out", None, "Also write the numbers to this JSON file.")
_SCORES_OUT = flags.DEFINE_string("scores_out", None,
                                  "Write the per-sample outputs (scores, labels) to this .npz file "
                                  "(an ensemble's scores are (M, N): one row per member).")
_CACHE = flags.DEFINE_bool("cache", True, "Keep finished batches in WORKDIR/score_cache/<split> "
                           "so that a killed evaluation resumes from them.")
flags.mark_flag_as_required("workdir")


def _member_result(split, out, val, quantile) -> dict:
  """One member's (or a single run's) numbers: metrics, or score quantiles on a normal split."""
  if val is not None:
    return evaluation.evaluate(split, out, val, quantile)
  return {"score_quantiles": {
      name: {str(q): float(np.quantile(out[name], q)) for q in (0.05, 0.5, 0.95)}
      for name in evaluation.score_names(out)}}


def main(argv):
  del argv
  run_outputs.quiet_orbax_logs()
  workdir = _WORKDIR.value
  config = workdir_lib.load_config(workdir)
  if _DATA_PATH.value is not None:
    config.data.path = _DATA_PATH.value
  splits = data.load(config.data, config.seed)
  split = getattr(splits, _SPLIT.value)
  trained = workdir_lib.restore(workdir, splits.train.x.shape[1:], member=_MEMBER.value,
                                config=config)
  cache = os.path.join(workdir, "score_cache")
  # Member k's scores, and an ensemble's batch-major (N, M) ones, get caches of
  # their own (before this layout, an ensemble's cache held member-major rows).
  suffix = ("_members" if trained.stacked else "" if trained.member is None
            else f"_member{trained.member}")

  def score(name, x):
    return trained.scorer.members(
        trained.state, x,
        cache_dir=os.path.join(cache, name + suffix) if _CACHE.value else None)

  outs = score(_SPLIT.value, split.x)
  vals = ([None] * len(outs) if split.y.min() == split.y.max() else score("val", splits.val.x))
  quantile = config.eval.threshold_quantile
  result = {"workdir": workdir, "checkpoint_step": trained.step, "split": _SPLIT.value,
            "num_samples": int(len(split.x))}
  if trained.member is not None:
    members = ensemble.plan(config)
    result.update(member=trained.member, seed=members.seeds[trained.member],
                  point=dict(members.points[trained.member]))
  result.update(run_report.member_results(
      trained.config, trained.members,
      [_member_result(split, out, val, quantile) for out, val in zip(outs, vals)]))
  if _SCORES_OUT.value:
    names = evaluation.score_names(outs[0])
    scores = {name: np.stack([out[name] for out in outs]) if trained.stacked else outs[0][name]
              for name in names}
    run_outputs.save_npz(_SCORES_OUT.value, dict(scores, y=split.y, kinds=split.kinds))
  print(json.dumps(result, indent=2, sort_keys=True))
  if _JSON_OUT.value:
    run_outputs.write_json(_JSON_OUT.value, result)


if __name__ == "__main__":
  cli.run_main(main)
