"""Method x class x seed grids of `train_and_evaluate`, and their benchmark.md / .json.

Each run writes its own workdir `<root>/<method>/<class>/seed<k>`; a run whose
`results.json` exists and was made with the same config (but for fields that
do not change results, `configs.RESULT_NEUTRAL_FIELDS`) is read back, not
repeated, so an interrupted benchmark resumes where it stopped; one made with
another config is refused by name (`workdir.finished_results`). The mean +- std
tables are `result_tables.benchmark_summary` / `result_tables.benchmark_markdown`.
"""

import os
import time

from absl import logging
import ml_collections

from ganad_jax import configs
from ganad_jax import result_tables
from ganad_jax import run_outputs
from ganad_jax import train
from ganad_jax import workdir as workdir_lib


def run_dir(root: str, method: str, class_label: str, seed: int) -> str:
  return os.path.join(root, method, class_label, f"seed{seed}")


def run_grid(config: ml_collections.ConfigDict, methods: list[str], classes: list[int] | None,
             seeds: list[int], root: str, overwrite: bool = False) -> list[dict]:
  """Trains and scores every (method, class, seed); `classes=None` keeps config.data's class.

  Each method's config is `configs.with_method(config, method)`: the shared
  sections of `config`, and the method's own sections as `config` has them
  (when it is built for that method, or one that reads the same sections),
  else at their defaults.

  Every run's workdir is checked before any training: a finished run is reused
  only when made with this run's config (`workdir.finished_results`: equal but for
  `configs.RESULT_NEUTRAL_FIELDS`); one made with another config raises
  `workdir.IncompatibleResultsError` naming the fields, or with `overwrite` is
  deleted and run again.
  """
  cells = []
  for method in methods:
    for class_index in classes if classes is not None else [None]:
      for seed in seeds:
        run_config = configs.with_method(config, method)  # Its own sections, see there.
        run_config.seed = seed
        if class_index is not None:
          run_config.data.class_index = class_index
        class_label = "all" if class_index is None else str(class_index)
        cells.append((method, class_label, seed, run_config,
                      run_dir(root, method, class_label, seed)))
  finished = [workdir_lib.finished_results(workdir, run_config, overwrite)
              for _, _, _, run_config, workdir in cells]
  rows = []
  for (method, class_label, seed, run_config, workdir), results in zip(cells, finished):
    if results is None:
      t0 = time.perf_counter()
      results = train.train_and_evaluate(run_config, workdir)
      logging.info("%s class %s seed %d: AUROC %.4f (%.0f s)", method, class_label, seed,
                   results["metrics"]["score"]["auroc"], time.perf_counter() - t0)
    rows.append({"method": method, "class": class_label, "seed": seed,
                 "metrics": results["metrics"]["score"],
                 "wall_time_s": results["wall_time_s"]["total"],
                 "data": results["data"], "paper_repro": results.get("paper_repro")})
  return rows


def write(table: dict, rows: list[dict], root: str, header: str) -> str:
  """Writes `benchmark.md` and `benchmark.json` into `root`; returns the Markdown.

  Args:
    table: `result_tables.benchmark_summary(rows)`.
    rows: `run_grid`'s rows.
    root: the benchmark's root directory.
    header: Markdown put above the tables (one per metric of `result_tables.BENCHMARK_METRICS`).
  """
  parts = [result_tables.benchmark_markdown(table, m) for m in result_tables.BENCHMARK_METRICS]
  protocols = result_tables.protocol_rows(rows)
  if protocols:
    parts.append("Honest vs paper_repro (`config.eval.paper_repro`: the references' "
                 "evaluation, the epoch chosen on test labels; not a result of this project)\n\n"
                 + result_tables.benchmark_markdown(result_tables.benchmark_summary(protocols),
                                                "auroc"))
  text = "\n\n".join([header] + [part for part in parts if part])
  run_outputs.write_atomic(os.path.join(root, "benchmark.md"), text + "\n")
  run_outputs.write_json(os.path.join(root, "benchmark.json"), {"table": table, "runs": rows})
  return text
