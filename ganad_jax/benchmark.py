"""Method x class x seed grids of `train_and_evaluate`, summarised as mean +- std tables.

Each run writes its own workdir `<root>/<method>/<class>/seed<k>`; a run whose
`results.json` exists and was made with the same config (but for fields that
do not change results, `configs.RESULT_NEUTRAL_FIELDS`) is read back, not
repeated, so an interrupted benchmark resumes where it stopped; one made with
another config is refused by name (`workdir.finished_results`).
"""

import os
import time

from absl import logging
import ml_collections
import numpy as np

from ganad_jax import reporting
from ganad_jax import train
from ganad_jax import workdir as workdir_lib

METRICS = ("auroc", "auprc", "pixel_auroc", "aupro")


def run_dir(root: str, method: str, class_label: str, seed: int) -> str:
  return os.path.join(root, method, class_label, f"seed{seed}")


def run_grid(config: ml_collections.ConfigDict, methods: list[str], classes: list[int] | None,
             seeds: list[int], root: str, overwrite: bool = False) -> list[dict]:
  """Trains and scores every (method, class, seed); `classes=None` keeps config.data's class.

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
        run_config = ml_collections.ConfigDict(config.to_dict())
        run_config.method, run_config.seed = method, seed
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
                 "data": results["data"]})
  return rows


def _mean_std(values) -> dict:
  values = np.asarray(values, np.float64)
  return {"mean": float(values.mean()), "std": float(values.std()), "n": int(len(values))}


def summarize(rows: list[dict]) -> dict:
  """Per (method, class) and overall mean +- std over seeds, for every metric present.

  Overall: for each seed, the mean over classes; then mean +- std of those over seeds.
  """
  table = {}
  for method in dict.fromkeys(r["method"] for r in rows):
    mrows = [r for r in rows if r["method"] == method]
    classes = list(dict.fromkeys(r["class"] for r in mrows))
    seeds = sorted({r["seed"] for r in mrows})
    metrics = [m for m in METRICS if all(m in r["metrics"] for r in mrows)]
    entry = {"per_class": {}, "overall": {},
             "wall_time_s": float(sum(r["wall_time_s"] for r in mrows))}
    for c in classes:
      entry["per_class"][c] = {m: _mean_std([r["metrics"][m] for r in mrows if r["class"] == c])
                               for m in metrics}
    for m in metrics:
      per_seed = [np.mean([r["metrics"][m] for r in mrows if r["seed"] == s]) for s in seeds]
      entry["overall"][m] = _mean_std(per_seed)
    table[method] = entry
  return table


def markdown(table: dict, metric: str = "auroc") -> str:
  """Classes as rows, methods as columns, `metric` mean +- std over seeds."""
  methods = [m for m in table if metric in table[m]["overall"]]
  if not methods:
    return ""
  classes = list(dict.fromkeys(c for m in methods for c in table[m]["per_class"]))
  cell = lambda s: f"{s['mean']:.3f} ± {s['std']:.3f}" if s else ""
  rows = [[c] + [cell(table[m]["per_class"].get(c, {}).get(metric)) for m in methods]
          for c in classes]
  rows.append(["**mean**"] + [cell(table[m]["overall"][metric]) for m in methods])
  rows.append(["wall time (s)"] + [f"{table[m]['wall_time_s']:.0f}" for m in methods])
  return f"{metric}\n\n" + reporting.markdown_table(["class"] + methods, rows)


def write(table: dict, rows: list[dict], root: str, header: str) -> str:
  """Writes `benchmark.md` and `benchmark.json` into `root`; returns the Markdown."""
  text = "\n\n".join([header] + [markdown(table, m) for m in METRICS if markdown(table, m)])
  reporting.write_atomic(os.path.join(root, "benchmark.md"), text + "\n")
  reporting.write_json(os.path.join(root, "benchmark.json"), {"table": table, "runs": rows})
  return text
