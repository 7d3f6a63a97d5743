r"""Runs a config under settings that change the program (sizes, data) and merges the tables.

  python experiments/sweep.py --config=configs/ganomaly_digits.py --workdir=/tmp/sweep \
      --sweep=model.nz=16,100 --sweep=model.base_features=16,32 \
      --config.ensemble.seeds='(0,1,2)' \
      --config.ensemble.grid="(('ganomaly.w_con',(1.0,50.0)),)"

Every combination of --sweep values is one run in WORKDIR/<field=value,...>
(itself an ensemble if the config has one: seeds x grid in one vmapped
program). The merged table, a row per (setting, grid point) with mean ± std
over seeds, goes to WORKDIR/sweep.md and WORKDIR/sweep.json. Finished runs are
read back, so re-running the command resumes. --processes=N runs each setting
in its own process, N at a time.
"""

import json
import shlex
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

from ganad_jax import cli
from ganad_jax import run_outputs
from ganad_jax import sweep
from ganad_jax import train
from ganad_jax import workdir as workdir_lib

_WORKDIR = flags.DEFINE_string("workdir", None, "Root directory of the runs and the table.")
_SWEEP = flags.DEFINE_multi_string("sweep", [], "field=value1,value2,...; repeat for more axes.")
_PROCESSES = flags.DEFINE_integer("processes", 0, "0: settings one after another in this "
                                  "process; N: each in its own process, N at a time.")
_RUN_CONFIG = flags.DEFINE_string("run_config", None, "Internal: run the config saved at this "
                                  "JSON path into --workdir (one setting of a --processes sweep).")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Delete and rerun a setting whose directory "
                                "holds a run of another config (default: refuse, naming the fields).")
config_flags.DEFINE_config_file("config", None, "Base config file (configs/*.py).",
                                lock_config=True)
flags.mark_flag_as_required("workdir")


def main(argv):
  del argv
  run_outputs.quiet_orbax_logs()
  if _RUN_CONFIG.value:
    with open(_RUN_CONFIG.value, encoding="utf-8") as f:
      config = workdir_lib.config_from_dict(json.load(f), source=_RUN_CONFIG.value)
    train.train_and_evaluate(config, _WORKDIR.value)
    return
  if flags.FLAGS.config is None:
    raise app.UsageError("--config is required.")
  rows = sweep.run(flags.FLAGS.config, sweep.parse_axes(_SWEEP.value), _WORKDIR.value,
                   _PROCESSES.value, overwrite=_OVERWRITE.value)
  command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
  print(sweep.write(rows, _WORKDIR.value, f"Mean ± std over seeds.\n\nCommand: `{command}`"))


if __name__ == "__main__":
  cli.run_main(main)
