r"""Runs methods x classes x seeds and writes a mean +- std table (Markdown and JSON).

  python experiments/benchmark.py --config=configs/ae_digits.py --methods=ae,ssim_ae \
      --classes=0,1,2,3,4,5,6,7,8,9 --seeds=0,1,2 --workdir=/tmp/bench_digits

Tables go to WORKDIR/benchmark.md and WORKDIR/benchmark.json, with the ROC / PR
curves of all methods overlaid per class in WORKDIR/figures/roc_<class>.png
(embedded in benchmark.md). Re-running the command reuses finished runs. For the
folder protocol leave --classes empty.
"""

import shlex
import sys

from absl import flags
from ml_collections import config_flags

from ganad_jax import benchmark
from ganad_jax import cli
from ganad_jax import result_tables
from ganad_jax import run_outputs
from ganad_jax import run_report

_WORKDIR = flags.DEFINE_string("workdir", None, "Root directory of all runs (WORKDIR/<method>/"
                               "<class>/seed<k>), the tables and the figures.")
_METHODS = flags.DEFINE_list("methods", ["ae", "ssim_ae"], "Comma-separated methods to compare "
                             "(names of ganad_jax.methods).")
_CLASSES = flags.DEFINE_list("classes", [], "Comma-separated class indices (data.class_index of "
                             "the class protocols); empty = the config's class only.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Comma-separated seeds of every "
                           "(method, class).")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Delete and rerun a run directory that holds "
                                "a run of another config (default: refuse, naming the fields).")
config_flags.DEFINE_config_file("config", None, "Base config file (configs/*.py[:arg]); its method "
                                "is replaced by each of --methods. Override fields with "
                                "--config.<section>.<field>=value.", lock_config=True)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  run_outputs.quiet_orbax_logs()
  classes = [int(c) for c in _CLASSES.value] or None
  rows = benchmark.run_grid(flags.FLAGS.config, _METHODS.value, classes,
                            [int(s) for s in _SEEDS.value], _WORKDIR.value,
                            overwrite=_OVERWRITE.value)
  command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
  info = rows[0]["data"]
  header = (f"Protocol {info['protocol']} on {info['source']}; mean ± std over seeds "
            f"{', '.join(_SEEDS.value)}.\n\nCommand: `{command}`")
  header += "".join(f"\n\n![{path}]({path})"
                    for path in run_report.benchmark_figures(_WORKDIR.value))
  print(benchmark.write(result_tables.benchmark_summary(rows), rows, _WORKDIR.value, header))


if __name__ == "__main__":
  cli.run_main(main)
