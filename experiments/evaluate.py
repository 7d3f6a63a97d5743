r"""Re-scores a trained workdir's newest checkpoint on one split of its data.

  python experiments/evaluate.py --workdir=/tmp/ae_digits --split=test

The data are rebuilt from the workdir's config.json (same source, protocol and
seed, hence the same split); `--data_path` points the same config at another
copy of the data. Normal-only splits (train, val) report score statistics.

Scoring can be long (AnoGAN searches z for every sample): finished batches are
kept in WORKDIR/score_cache/<split>, so a killed evaluation re-run with the
same command resumes where it stopped, with identical scores.
"""

import json
import os

from absl import app
from absl import flags
import jax
import numpy as np

from ganad_jax import data
from ganad_jax import evaluation
from ganad_jax import reporting
from ganad_jax import train

_WORKDIR = flags.DEFINE_string("workdir", None, "A workdir written by experiments/train.py.")
_SPLIT = flags.DEFINE_enum("split", "test", ["train", "val", "test"], "Which split to score.")
_DATA_PATH = flags.DEFINE_string("data_path", None, "Overrides config.data.path.")
_JSON_OUT = flags.DEFINE_string("json_out", None, "Also write the numbers to this JSON file.")
_SCORES_OUT = flags.DEFINE_string("scores_out", None,
                                  "Write the per-sample outputs (scores, labels) to this .npz file.")
_CACHE = flags.DEFINE_bool("cache", True, "Keep finished batches in WORKDIR/score_cache/<split> "
                           "so that a killed evaluation resumes from them.")
flags.mark_flag_as_required("workdir")


def main(argv):
  del argv
  reporting.quiet_orbax_logs()
  config = train.load_config(_WORKDIR.value)
  if _DATA_PATH.value is not None:
    config.data.path = _DATA_PATH.value
  splits = data.load(config.data, config.seed)
  split = getattr(splits, _SPLIT.value)
  method, state, step, score_key = train.restore_trained(
      _WORKDIR.value, config, splits.train.x.shape[1:])
  score_fn = jax.jit(method.score)
  cache = os.path.join(_WORKDIR.value, "score_cache")
  out = evaluation.score_split(score_fn, state, split.x, score_key, config.eval.batch_size,
                               cache_dir=os.path.join(cache, _SPLIT.value) if _CACHE.value else None)
  result = {"workdir": _WORKDIR.value, "checkpoint_step": step, "split": _SPLIT.value,
            "num_samples": int(len(split.x))}
  if split.y.min() != split.y.max():
    val = evaluation.score_split(score_fn, state, splits.val.x, score_key, config.eval.batch_size,
                                 cache_dir=os.path.join(cache, "val") if _CACHE.value else None)
    result.update(evaluation.evaluate(split, out, val, config.eval.threshold_quantile))
  else:
    result["score_quantiles"] = {
        name: {str(q): float(np.quantile(out[name], q)) for q in (0.05, 0.5, 0.95)}
        for name in evaluation.score_names(out)}
  if _SCORES_OUT.value:
    scores = {name: out[name] for name in evaluation.score_names(out)}
    evaluation.save_npz_atomic(_SCORES_OUT.value, dict(scores, y=split.y, kinds=split.kinds))
  text = json.dumps(result, indent=2, sort_keys=True)
  print(text)
  if _JSON_OUT.value:
    reporting.write_json(_JSON_OUT.value, result)


if __name__ == "__main__":
  app.run(main)
