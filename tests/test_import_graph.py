"""The package's import graph: acyclic, and the config schema imports no JAX.

The graph is read from the source with `ast`: every `import` of a ganad_jax
module, at module level or inside a function (a lazy import is a dependency
too, only a hidden one). `from ganad_jax.x import y` counts as an import of
ganad_jax.x.y when y is a module, else of ganad_jax.x. A package's own
`__init__` is not counted as imported by its submodules (Python runs it first,
but nothing in it is used by them).

  PYTHONPATH=. python -m pytest -q tests/test_import_graph.py
"""

import ast
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "ganad_jax"

def _modules() -> dict[str, str]:
  """{dotted module name: file path} of every module of the package."""
  out = {}
  for folder, _, files in os.walk(os.path.join(REPO, PACKAGE)):
    for name in files:
      if name.endswith(".py"):
        path = os.path.join(folder, name)
        module = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
        out[module.removesuffix(".__init__")] = path
  return out


def import_graph() -> dict[str, set[str]]:
  """{module: the package's modules it imports anywhere in its source}."""
  modules = _modules()
  graph = {}
  for module, path in modules.items():
    with open(path, encoding="utf-8") as f:
      tree = ast.parse(f.read(), path)
    targets = set()
    for node in ast.walk(tree):
      if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
      elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules
                 else node.module for alias in node.names]
      else:
        continue
      for name in names:
        while name not in modules and "." in name:  # `import ganad_jax.x.y` of a non-module y.
          name = name.rsplit(".", 1)[0]
        if name in modules and name.split(".")[0] == PACKAGE:
          targets.add(name)
    graph[module] = targets - {module}
  return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[frozenset[str]]:
  """The cycles of `graph`: its strongly connected components of more than one module."""
  index, low, stack, on_stack, out = {}, {}, [], set(), []

  def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in sorted(graph.get(v, ())):
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = set()
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.add(w)
        if w == v:
          break
      if len(component) > 1:
        out.append(frozenset(component))

  for v in sorted(graph):
    if v not in index:
      visit(v)
  return out


def test_the_graph_is_read():
  graph = import_graph()
  assert "ganad_jax.configs.schema" in graph["ganad_jax.configs"]
  assert "ganad_jax.detector" in graph["ganad_jax"]  # A lazy import (in __getattr__).


def test_no_import_cycle():
  graph = import_graph()
  cycles = [sorted(c) for c in strongly_connected(graph)]
  assert not cycles, "Import cycles: " + "; ".join(
      ", ".join(f"{m} -> {sorted(graph[m] & set(c))}" for m in c) for c in cycles)


def test_configs_import_only_ml_collections():
  graph = import_graph()
  config_modules = [m for m in graph if m.startswith("ganad_jax.configs")]
  assert len(config_modules) > 5
  for module in config_modules:
    outside = {m for m in graph[module] if not m.startswith("ganad_jax.configs")}
    assert not outside, f"{module} imports {sorted(outside)}"


@pytest.mark.parametrize("code", [
    "from ganad_jax import configs; configs.base_config()",
    # What experiments/train.py does with --config=...: load the file by path.
    "from absl import flags; from ml_collections import config_flags\n"
    "c = config_flags.DEFINE_config_file('config', lock_config=True)\n"
    "flags.FLAGS(['x', '--config=configs/ablation_ganomaly_wcon.py:digit=3,smoke=true'])\n"
    "assert c.value.data.class_index == 3",
])
def test_reading_a_config_imports_no_jax(code):
  check = ("import sys\nheavy = [m for m in ('jax', 'flax', 'optax', 'sklearn', 'numpy') "
           "if m in sys.modules]\nassert not heavy, heavy")
  env = dict(os.environ, PYTHONPATH=REPO)
  result = subprocess.run([sys.executable, "-c", code + "\n" + check], cwd=REPO, env=env,
                          capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stderr


def test_the_classic_threefry_is_set_either_import_order():
  env = {k: v for k, v in os.environ.items() if k != "JAX_THREEFRY_PARTITIONABLE"}
  env["PYTHONPATH"] = REPO  # This process's import of ganad_jax set the variable: not inherited.
  for code in ("import ganad_jax, jax", "import jax, ganad_jax"):
    result = subprocess.run(
        [sys.executable, "-c", code + "; print(jax.config.jax_threefry_partitionable)"],
        cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False", code
