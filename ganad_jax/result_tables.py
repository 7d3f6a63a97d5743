"""Result tables: mean ± std summaries over seeds, and their Markdown.

Pure functions of results dicts (no file I/O):
  - one run: `results_markdown` (results.md of a single run),
    `ensemble_results_markdown` (results.md of an ensemble);
  - an ensemble or a sweep: `mean_std_over_seeds` (a row per (setting, grid point),
    mean ± std over seeds) and `markdown` (sweep.md);
  - a benchmark grid: `benchmark_summary` (per (method, class) and overall)
    and `benchmark_markdown` (benchmark.md, one table per metric);
    `protocol_rows` puts a grid's honest and paper_repro AUROCs side by side.
"""

import math
import os

import numpy as np

# The primary score's metrics shown in an ensemble's / sweep's table.
TABLE_METRICS = ("auroc", "auprc", "f1_max", "pixel_auroc", "aupro")
# The metrics a benchmark summarises, one Markdown table each.
BENCHMARK_METRICS = ("auroc", "auprc", "pixel_auroc", "aupro")


def markdown_table(header: list[str], rows: list[list]) -> str:
  """A Markdown table; floats shown with 4 decimals, everything else with `str`."""
  fmt = lambda v: f"{v:.4f}" if isinstance(v, float) else str(v)
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
  return "\n".join(lines)


def mean_std(values, keep_values: bool = True) -> dict:
  """{"mean", "std" (population), "n"} of `values`, plus the "values" themselves if asked."""
  values = np.asarray(values, np.float64)
  out = {"mean": float(values.mean()), "std": float(values.std()), "n": int(values.size)}
  if keep_values:
    out["values"] = [float(v) for v in values]
  return out


def results_markdown(results: dict, figures: list[str] | None = None) -> str:
  """A one-run report: metrics per score, data, protocol and timing.

  Args:
    results: the run's `results.json` content.
    figures: PNG paths relative to the run's directory (`run_report.write_run_figures`),
      embedded as Markdown images at the end; None or empty embeds none.
  """
  info = results["data"]
  metric_names = sorted({k for m in results["metrics"].values() for k in m})
  rows = [[name] + [m.get(k, "") for k in metric_names]
          for name, m in results["metrics"].items()]
  kinds = results.get("auroc_per_kind", {})
  parts = [
      f"# {results['method']} on {info['source']} ({info['protocol']}, seed {results['seed']})",
      "",
      markdown_table(["score"] + metric_names, rows),
      "",
  ]
  if kinds:
    pixel = results.get("pixel_auroc_per_kind", {})
    parts += ["AUROC of each anomaly kind against the test normals (primary score"
              + ("; pixel AUROC over those images' maps" if pixel else "") + "):", "",
              markdown_table(["kind", "auroc"] + (["pixel_auroc"] if pixel else []),
                             [[k, v] + ([pixel[k]] if pixel else []) for k, v in kinds.items()]),
              ""]
  parts += [
      f"- data: {info['source']}, protocol {info['protocol']}, sizes "
      + ", ".join(f"{k} {v}" for k, v in results["sizes"].items()),
      *[f"- {note}" for note in info.get("notes", [])],
      f"- steps: {results['steps']}, batch {results['batch_size']}",
      f"- wall time: train {results['wall_time_s']['train']:.1f} s, "
      f"score {results['wall_time_s']['score']:.1f} s, "
      f"total {results['wall_time_s']['total']:.1f} s",
      f"- devices: {results['devices']}",
      "",
  ]
  if figures:
    parts += ["## Figures", ""]
    for path in figures:
      name = os.path.splitext(os.path.basename(path))[0].replace("_", " ")
      parts += [f"![{name}]({path.replace(os.sep, '/')})", ""]
  return "\n".join(parts)


def mean_std_over_seeds(member_results: list[dict], setting: str = "") -> list[dict]:
  """One row per (setting, grid point): mean +- std over seeds of every metric of every score.

  Args:
    member_results: per member, {"seed", "point" ({field: value}), "metrics"
      ({score name: {metric: value}})}, in member order.
    setting: a label of the non-vmapped settings (experiments/sweep.py), or "".

  Returns:
    Rows {"setting", "point", "seeds", "metrics": {score: {metric: mean/std/n/values}}};
    a metric missing or non-finite for any seed is left out of its row.
  """
  rows = {}
  for result in member_results:
    key = repr(sorted(result["point"].items()))
    rows.setdefault(key, []).append(result)
  table = []
  for results in rows.values():
    scores = results[0]["metrics"]
    table.append({
        "setting": setting,
        "point": results[0]["point"],
        "seeds": [r["seed"] for r in results],
        "metrics": {name: {metric: mean_std([r["metrics"][name][metric] for r in results])
                           for metric in scores[name]
                           if all(metric in r["metrics"][name] for r in results)
                           and all(math.isfinite(r["metrics"][name][metric]) for r in results)}
                    for name in scores},
    })
  return table


def markdown(table: list[dict], title: str = "") -> str:
  """`mean_std_over_seeds`'s rows as Markdown: a row per (setting, grid point).

  Columns: the primary score's metrics among TABLE_METRICS, then the AUROC of
  every alternative score.
  """
  if not table:
    return ""
  primary = [m for m in TABLE_METRICS if all(m in row["metrics"]["score"] for row in table)]
  alternatives = sorted({name for row in table for name in row["metrics"] if name != "score"})
  alternatives = [a for a in alternatives
                  if all("auroc" in row["metrics"].get(a, {}) for row in table)]
  cell = lambda s: f"{s['mean']:.4f} ± {s['std']:.4f}"
  with_setting = any(row["setting"] for row in table)
  header = (["setting"] if with_setting else []) + ["grid point", "seeds"] + primary + [
      f"{a} auroc" for a in alternatives]
  rows = []
  for row in table:
    point = ", ".join(f"{k}={v}" for k, v in row["point"].items()) or "-"
    rows.append(([row["setting"] or "-"] if with_setting else []) + [
        point, ",".join(str(s) for s in row["seeds"])] + [
        cell(row["metrics"]["score"][m]) for m in primary] + [
        cell(row["metrics"][a]["auroc"]) for a in alternatives])
  text = markdown_table(header, rows)
  return f"{title}\n\n{text}\n" if title else text + "\n"


def ensemble_results_markdown(results: dict) -> str:
  """The report of an ensemble run: the grid table, then data, protocol and timing."""
  info, ens = results["data"], results["ensemble"]
  title = (f"# {results['method']} ensemble on {info['source']} ({info['protocol']}): "
           f"{ens['members']} members, mean ± std over seeds {', '.join(map(str, ens['seeds']))}")
  parts = [
      markdown(results["table"], title),
      f"- data: {info['source']}, protocol {info['protocol']}, split of seed {ens['split_seed']} "
      "for every member, sizes " + ", ".join(f"{k} {v}" for k, v in results["sizes"].items()),
      *[f"- {note}" for note in info.get("notes", [])],
      f"- steps: {results['steps']}, batch {results['batch_size']} per member",
      "- wall time: " + ", ".join(f"{k} {results['wall_time_s'][k]:.1f} s"
                                  for k in ("train", "score", "total")),
      f"- devices: {results['devices']}, mesh {results['mesh']}",
      "",
  ]
  return "\n".join(parts)


def benchmark_summary(rows: list[dict]) -> dict:
  """Per (method, class) and overall mean +- std over seeds, for every metric present.

  Args:
    rows: `benchmark.run_grid`'s rows: {"method", "class", "seed", "metrics",
      "wall_time_s"}.

  Returns:
    {method: {"per_class": {class: {metric: mean/std/n}}, "overall": {metric:
    mean/std/n}, "wall_time_s"}}. Overall: for each seed, the mean over
    classes; then mean +- std of those over seeds.
  """
  table = {}
  for method in dict.fromkeys(r["method"] for r in rows):
    mrows = [r for r in rows if r["method"] == method]
    classes = list(dict.fromkeys(r["class"] for r in mrows))
    seeds = sorted({r["seed"] for r in mrows})
    metrics = [m for m in BENCHMARK_METRICS if all(m in r["metrics"] for r in mrows)]
    entry = {"per_class": {}, "overall": {},
             "wall_time_s": float(sum(r["wall_time_s"] for r in mrows))}
    for c in classes:
      entry["per_class"][c] = {
          m: mean_std([r["metrics"][m] for r in mrows if r["class"] == c], keep_values=False)
          for m in metrics}
    for m in metrics:
      per_seed = [np.mean([r["metrics"][m] for r in mrows if r["seed"] == s]) for s in seeds]
      entry["overall"][m] = mean_std(per_seed, keep_values=False)
    table[method] = entry
  return table


def benchmark_markdown(table: dict, metric: str = "auroc") -> str:
  """`benchmark_summary` as Markdown: classes as rows, methods as columns, `metric` mean +- std.

  Returns "" when no method has `metric`.
  """
  methods = [m for m in table if metric in table[m]["overall"]]
  if not methods:
    return ""
  classes = list(dict.fromkeys(c for m in methods for c in table[m]["per_class"]))
  cell = lambda s: f"{s['mean']:.3f} ± {s['std']:.3f}" if s else ""
  rows = [[c] + [cell(table[m]["per_class"].get(c, {}).get(metric)) for m in methods]
          for c in classes]
  rows.append(["**mean**"] + [cell(table[m]["overall"][metric]) for m in methods])
  rows.append(["wall time (s)"] + [f"{table[m]['wall_time_s']:.0f}" for m in methods])
  return f"{metric}\n\n" + markdown_table(["class"] + methods, rows)


def protocol_rows(rows: list[dict]) -> list[dict]:
  """`benchmark.run_grid` rows as three AUROC columns per method: honest vs the references' protocol.

  For every run with a "paper_repro" entry (`ganad_jax.paper_repro.summary`):
  "<method> honest" (the run's own AUROC: last or validation-chosen step,
  eval-mode BatchNorm, raw scores), "<method> paper_repro" (the best epoch
  on test labels, the references' test-time BatchNorm) and "<method>
  paper_repro last" (the same protocol at the last epoch: the BatchNorm
  effect without the epoch choice). Feed them to `benchmark_summary` and
  `benchmark_markdown(..., "auroc")` for one table.
  """
  out = []
  for r in rows:
    paper = r.get("paper_repro")
    if paper is None:
      continue
    for column, value in (("honest", r["metrics"]["auroc"]), ("paper_repro", paper["auroc"]),
                          ("paper_repro last", paper["auroc_last"])):
      out.append(dict(r, method=f"{r['method']} {column}", metrics={"auroc": value}))
  return out
