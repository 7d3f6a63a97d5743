r"""Overlays the ROC and PR curves of every method of a benchmark, one figure per class.

  python experiments/plot_benchmark.py --root=/tmp/bench_digits

Reads `ROOT/<method>/<class>/seed<k>/scores.npz` (written by every training run
next to its results.json), writes `ROOT/figures/roc_<class>.png` and prints
Markdown image links. The seeds of one method share its colour; the legend gives
AUROC / AUPRC mean +- std over seeds. Runs without scores.npz (trained before
the figures existed) are skipped; `experiments/evaluate.py --workdir=RUN
--scores_out=RUN/scores.npz` writes the file for such a run.
"""

from absl import app
from absl import flags

from ganad_jax import cli
from ganad_jax import run_report

_ROOT = flags.DEFINE_string("root", None, "Benchmark root directory (the --workdir given to "
                            "experiments/benchmark.py).")
_SCORE = flags.DEFINE_string("score", "score", "Which score to plot: 'score' (the primary one) "
                             "or an alternative 'score_<name>' saved by the runs.")
flags.mark_flag_as_required("root")


def main(argv):
  del argv
  paths = run_report.benchmark_figures(_ROOT.value, score=_SCORE.value)
  if not paths:
    raise app.UsageError(f"No run under {_ROOT.value} has a scores.npz with {_SCORE.value!r}.")
  print("\n\n".join(f"![{p}]({p})" for p in paths))


if __name__ == "__main__":
  cli.run_main(main)
