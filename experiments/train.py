r"""Trains a method and evaluates it: flags only, the work is `train_and_evaluate`.

  python experiments/train.py --config=configs/ae_digits.py --workdir=/tmp/ae \
      --config.data.class_index=3 --config.seed=1

Re-running the same command resumes from the workdir's last checkpoint.
"""

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from ganad_jax import reporting
from ganad_jax import train

_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, event files and results.")
config_flags.DEFINE_config_file("config", None, "Experiment config file (configs/*.py).",
                                lock_config=True)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  reporting.quiet_orbax_logs()
  results = train.train_and_evaluate(flags.FLAGS.config, _WORKDIR.value)
  logging.info("Results written to %s/results.json", _WORKDIR.value)
  print(reporting.results_markdown(results))


if __name__ == "__main__":
  app.run(main)
