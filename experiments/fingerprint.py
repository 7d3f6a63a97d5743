r"""Hashes what one short run per method produces, to show a refactor changed no number.

  python experiments/fingerprint.py --workdir=/tmp/fingerprint --json_out=/tmp/before.json
  # ... change the code ...
  python experiments/fingerprint.py --workdir=/tmp/fingerprint2 --compare=/tmp/before.json

For each method: a short run on digits (`configs/ae_digits.py` with the
method switched, 20 steps, `--config.eval.*` unchanged) through
`train.train_and_evaluate`, then three SHA-256 digests: every leaf of the
restored state (tree path, dtype, shape and bytes), the test split's score
outputs (`Trained.scorer`), and results.json without its wall times,
device strings and versions. Plus one 2-seed ensemble (seeds as a vmapped
axis). The same program rerun on one machine gives equal digests; `--compare`
lists every digest that differs and exits 1 if any does. `gaussian` and the
pretrained-feature methods need their inputs (`padim` needs the torch extra);
pass `--methods` to choose.
"""

import hashlib
import json
import os
import sys

from absl import flags
import jax
import numpy as np

from ganad_jax import cli
from ganad_jax import configs
from ganad_jax import data
from ganad_jax import scoring
from ganad_jax import train
from ganad_jax import workdir as workdir_lib

_WORKDIR = flags.DEFINE_string("workdir", None, "Parent of one fresh workdir per method.",
                               required=True)
_METHODS = flags.DEFINE_list(
    "methods", "ae,ssim_ae,vae,ganomaly,skip_ganomaly,egbad,anogan,gaussian,ensemble",
    "Methods to run; `ensemble` is an AE with seeds 0,1 as one vmapped program.")
_JSON_OUT = flags.DEFINE_string("json_out", None, "Write {method: digests} here.")
_COMPARE = flags.DEFINE_string("compare", None, "A --json_out of an earlier run to compare with.")

# Fields of results.json that describe the machine or the clock, not the run.
_VOLATILE = ("wall_time_s", "devices", "jax_version")


def _config(method: str):
  config = configs.sibling_config(os.path.join(os.path.dirname(__file__), "..", "configs", "x"),
                                  "ae_digits")
  config.train.num_steps = 20
  config.train.log_every = 10
  config.train.checkpoint_every = 20
  if method == "ensemble":
    config.ensemble.seeds = (0, 1)
  else:
    config = configs.with_method(config, method)
  if method == "anogan":
    config.anogan.search.steps, config.anogan.search.lr = 10, 0.05
  if method == "padim":
    config.pretrained.input_size = 64
  return config


def _digest(parts) -> str:
  h = hashlib.sha256()
  for part in parts:
    h.update(part if isinstance(part, bytes) else str(part).encode())
  return h.hexdigest()


def _tree_digest(tree) -> str:
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return _digest(b for path, leaf in leaves for a in [np.asarray(jax.device_get(leaf))]
                 for b in (jax.tree_util.keystr(path).encode(), str(a.dtype).encode(),
                           str(a.shape).encode(), a.tobytes()))


def fingerprint(method: str, workdir: str) -> dict[str, str]:
  """Runs `method` into a fresh `workdir`; digests of state, test scores and results."""
  config = _config(method)
  results = train.train_and_evaluate(config, workdir)
  splits = data.load(config.data, config.seed)
  trained = workdir_lib.restore(workdir, splits.test.x.shape[1:])
  outs = trained.scorer.members(trained.state, splits.test.x)
  # What was hashed before the one Scorer: one dict, an ensemble's (N, M, ...).
  outputs = scoring.stack_members(outs) if trained.stacked else outs[0]
  stable = {k: v for k, v in results.items() if k not in _VOLATILE}
  return {"state": _tree_digest(trained.state),
          "scores": _tree_digest(outputs),
          "results": _digest([json.dumps(stable, sort_keys=True, default=str)])}


def main(argv):
  del argv
  digests = {}
  for method in _METHODS.value:
    digests[method] = fingerprint(method, os.path.join(_WORKDIR.value, method))
    print(method, json.dumps(digests[method]), flush=True)
  if _JSON_OUT.value:
    with open(_JSON_OUT.value, "w", encoding="utf-8") as f:
      json.dump(digests, f, indent=1)
  if _COMPARE.value:
    with open(_COMPARE.value, encoding="utf-8") as f:
      before = json.load(f)
    differ = [f"{m}.{k}" for m in digests for k in digests[m]
              if before.get(m, {}).get(k) != digests[m][k]]
    print("equal" if not differ else "DIFFERENT: " + ", ".join(differ))
    if differ:
      sys.exit(1)


if __name__ == "__main__":
  cli.run_main(main)
