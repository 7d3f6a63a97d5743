r"""Trains a method and evaluates it: flags only, the work is `train_and_evaluate`.

  python experiments/train.py --config=configs/ae_digits.py --workdir=/tmp/ae \
      --config.data.class_index=3 --config.seed=1

Re-running the same command resumes from the workdir's last checkpoint.

Ensembles (seeds x a hyperparameter grid in one vmapped program):

  python experiments/train.py --config=configs/ae_digits.py --workdir=/tmp/ae_ens \
      --config.ensemble.seeds='(0,1,2)' --config.ensemble.grid="(('optim.lr',(1e-4,2e-4)),)"

Multi-process (one process per host; here two CPU processes on one machine):

  python experiments/train.py --config=configs/test.py --workdir=/tmp/two \
      --config.mesh.train_data=sharded \
      --coordinator_address=localhost:12355 --num_processes=2 --process_id=0 &
  python experiments/train.py ... the same ... --process_id=1
"""

from absl import flags
from absl import logging
from ml_collections import config_flags

from ganad_jax import cli
from ganad_jax import result_tables
from ganad_jax import run_outputs
from ganad_jax import sharding

_WORKDIR = flags.DEFINE_string("workdir", None,
                               "Directory for checkpoints, event files and results.")
config_flags.DEFINE_config_file("config", None, "Experiment config file (configs/*.py).",
                                lock_config=True)
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", "", "host:port of process 0, for a multi-process run "
    "(jax.distributed.initialize); empty for a single process.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", 1, "Processes in a multi-process run.")
_PROCESS_ID = flags.DEFINE_integer("process_id", 0, "This process's index in [0, num_processes).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  # Before anything touches a JAX backend.
  sharding.initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  from ganad_jax import train  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  run_outputs.quiet_orbax_logs()
  results = train.train_and_evaluate(flags.FLAGS.config, _WORKDIR.value)
  if jax.process_index() == 0:
    logging.info("Results written to %s/results.json", _WORKDIR.value)
    if "members" in results:
      print(result_tables.ensemble_results_markdown(results))
    else:
      print(result_tables.results_markdown(results, results.get("figures")))


if __name__ == "__main__":
  cli.run_main(main)
