"""Sweeps over settings that cannot share a vmapped program, merged into one table.

An ensemble (`config.ensemble`) trains seeds x a grid of vmappable
hyperparameters in one program. Sizes, architectures and data choices change
the program itself; a sweep runs one `train_and_evaluate` per setting (the
Cartesian product of its axes), each in `<root>/<label>` and each possibly an
ensemble, and merges their tables: a row per (setting, grid point), mean ±
std over seeds (`result_tables.mean_std_over_seeds` / `result_tables.markdown`). A setting whose
`results.json` exists and was made with the same config (`workdir.finished_results`)
is read back, not rerun, so an interrupted sweep resumes; one made with another
config is refused by name before anything runs.
"""

import ast
import itertools
import json
import os
import subprocess
import sys

from absl import logging
import ml_collections

from ganad_jax import configs
from ganad_jax import ensemble
from ganad_jax import result_tables
from ganad_jax import run_outputs
from ganad_jax import train
from ganad_jax import workdir as workdir_lib

Setting = tuple[tuple[str, object], ...]


def parse_axes(specs: list[str]) -> list[tuple[str, tuple]]:
  """['model.nz=16,100', ...] -> [('model.nz', (16, 100)), ...] (values as Python literals)."""
  axes = []
  for spec in specs:
    name, sep, values = spec.partition("=")
    if not sep or not name or not values:
      raise ValueError(f"--sweep entries are field=value1,value2,...; got {spec!r}.")
    parsed = []
    for text in values.split(","):
      try:
        parsed.append(ast.literal_eval(text))
      except (ValueError, SyntaxError):
        parsed.append(text)  # A bare word: a string value.
    axes.append((name.strip(), tuple(parsed)))
  return axes


def settings(axes: list[tuple[str, tuple]]) -> list[Setting]:
  return [tuple(p) for p in itertools.product(*[[(n, v) for v in vals] for n, vals in axes])]


def label(setting: Setting) -> str:
  """'model.nz=16,model.base_features=32': the row label and the run's directory name."""
  return ",".join(f"{name}={value}" for name, value in setting) or "base"


def setting_config(config: ml_collections.ConfigDict,
                   setting: Setting) -> ml_collections.ConfigDict:
  """A copy of `config` with the setting's fields set (each checked to exist and fit).

  A `method` axis is set first, by `configs.with_method` (the config then holds
  that method's sections, so that the other axes may name their fields).
  """
  out = ml_collections.ConfigDict(config.to_dict())
  grid_names = {entry[0] for entry in config.ensemble.grid}
  for name, value in sorted(setting, key=lambda entry: entry[0] != "method"):
    if name == "method":
      out = configs.with_method(out, value)
      continue
    if name in grid_names:
      raise ValueError(f"Sweep axis {name!r} is also in config.ensemble.grid; use one of them.")
    configs.set_field(out, name, value, "Sweep axis")
  return out


def rows_of(results: dict, setting_label: str) -> list[dict]:
  """The table rows of one run's results (an ensemble's table, or a single run as one row)."""
  if "members" in results:
    rows = results["table"]
    return [dict(row, setting=setting_label) for row in rows]
  single = {"seed": results["seed"], "point": {}, "metrics": results["metrics"]}
  return result_tables.mean_std_over_seeds([single], setting_label)


def _load(path: str) -> dict:
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def run(config: ml_collections.ConfigDict, axes: list[tuple[str, tuple]], root: str,
        processes: int = 0, overwrite: bool = False) -> list[dict]:
  """Runs (or reads back) every setting; returns the merged table rows.

  Args:
    config: the base config (may hold an ensemble).
    axes: the sweep's (field, values) axes.
    root: directory of the runs and tables.
    processes: 0 runs the settings one after another in this process; N > 0
      runs each in its own process (`experiments/sweep.py --run_config`), up
      to N at a time.
    overwrite: delete and rerun a setting whose workdir holds a run of another
      config, instead of raising.

  Raises:
    workdir.IncompatibleResultsError: (before any run) a setting's finished run
      was made with another config (`workdir.finished_results`), naming the fields.
  """
  todo = settings(axes)
  configs_ = [setting_config(config, s) for s in todo]  # Every setting checked before any run.
  for c in configs_:
    ensemble.plan(c)
  workdirs = [os.path.join(root, label(s)) for s in todo]
  finished = [workdir_lib.finished_results(w, c, overwrite) for w, c in zip(workdirs, configs_)]
  pending = [i for i, results in enumerate(finished) if results is None]
  if processes > 0:
    _run_processes([(configs_[i], workdirs[i]) for i in pending], processes)
  else:
    for i in pending:
      logging.info("Sweep setting %s -> %s", label(todo[i]), workdirs[i])
      train.train_and_evaluate(configs_[i], workdirs[i])
  rows = []
  for setting, workdir, results in zip(todo, workdirs, finished):
    if results is None:
      results = _load(os.path.join(workdir, "results.json"))
    rows += rows_of(results, label(setting))
  return rows


def _run_processes(jobs, processes: int) -> None:
  script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "experiments", "sweep.py")
  running = []
  for config, workdir in jobs:
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, "sweep_config.json")
    run_outputs.write_json(path, config.to_dict())
    log = open(os.path.join(workdir, "sweep.log"), "w",  # pylint: disable=consider-using-with
               encoding="utf-8")
    running.append((subprocess.Popen([sys.executable, script, f"--run_config={path}",
                                      f"--workdir={workdir}"], stdout=log,
                                     stderr=subprocess.STDOUT), log, workdir))
    while len([p for p, _, _ in running if p.poll() is None]) >= processes:
      running[0][0].wait()
  failed = []
  for proc, log, workdir in running:
    proc.wait()
    log.close()
    if proc.returncode:
      failed.append(workdir)
  if failed:
    raise RuntimeError(f"Sweep runs failed (see sweep.log in each): {', '.join(failed)}")


def write(rows: list[dict], root: str, header: str) -> str:
  """Writes `sweep.md` and `sweep.json` into `root`; returns the Markdown."""
  text = result_tables.markdown(rows, header)
  run_outputs.write_atomic(os.path.join(root, "sweep.md"), text)
  run_outputs.write_json(os.path.join(root, "sweep.json"), {"rows": rows})
  return text
