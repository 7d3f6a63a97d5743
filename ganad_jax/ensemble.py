"""Ensembles: seeds x a hyperparameter grid, trained and scored as ONE compiled program.

  config.ensemble.seeds = (0, 1, 2)
  config.ensemble.grid = (("ganomaly.w_con", (1.0, 10.0, 50.0, 100.0)),)

Members are every (grid point, seed) pair, grid points outermost (member
m = point * num_seeds + seed index); grid axes combine as a Cartesian product.
`make` turns a method into its stacked version: `init`, `train_step` and
`score` mapped over a leading member axis of the state pytree (and of the
keys), so `ganad_jax.train` runs an ensemble with the code of a single run:
checkpoints hold the whole stacked state, and resume, early stopping,
divergence checks and reports are shared. Its tables (mean ± std over seeds per
grid point) are `ganad_jax.result_tables.mean_std_over_seeds` / `result_tables.markdown`.

How the members are mapped (`config.ensemble.batching`): "vmap" batches them
into one set of wider ops (member-grouped convolutions, which GPU / TPU
libraries run well); "unroll" traces every member's ops side by side in the
program (XLA:CPU runs grouped convolutions 2x slower than one member at a
time); "auto" picks unroll on CPU, vmap elsewhere. Both compute the same.

What a member is: member (point, seed k) is the single run with
`config.seed = k` and the grid point's fields set, trained on the same data
split. Its keys are that run's `runner.root_keys(k)`, so it draws the same
initialisation, the same batches (every member gathers its own batch from the
one shared training array) and the same step and scoring noise. The data split
is `config.seed`'s for every member: seeds vary the model, not the data.

What can be a grid axis: a field whose values change neither the state's
shapes nor the traced program of `train_step` / `score`, only values inside
the state: loss weights a method reads from `state["hparams"]`, the learning
rate (kept in the Adam state by `base.adam`), AnoGAN's search lambda and
learning rate. Every axis is checked (`make` compares the init shapes and the
jaxprs of both functions across its values) and anything else is refused with
the field's name; sizes, architectures and data choices go through
`experiments/sweep.py` (one program per setting).
"""

import functools
import itertools
import re
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ganad_jax import configs
from ganad_jax import methods
from ganad_jax.methods import base

# Config sections that hold what every member shares (the loop, the data, the split seed).
NOT_VMAPPABLE = ("seed", "method", "compute_dtype", "conv_lowering", "data", "train", "eval",
                 "ensemble", "mesh")


class Members(NamedTuple):
  """Who the members of an ensemble are, in stacking order.

  Attributes:
    seeds: the seed of every member.
    points: the grid point of every member, as ((field, value), ...).
    num_seeds: seeds per grid point.
    num_points: grid points (1 without a grid).
  """
  seeds: tuple[int, ...]
  points: tuple[tuple[tuple[str, Any], ...], ...]
  num_seeds: int
  num_points: int

  @property
  def size(self) -> int:
    return len(self.seeds)

  def label(self, m: int) -> str:
    """'seed 1, ganomaly.w_con=10.0': who member m is, for messages."""
    return ", ".join([f"seed {self.seeds[m]}"] + [f"{k}={v}" for k, v in self.points[m]])


def _grid_axes(config: ml_collections.ConfigDict) -> list[tuple[str, tuple]]:
  """The validated (field, values) axes of `config.ensemble.grid`."""
  grid = config.ensemble.grid
  example = "e.g. (('ganomaly.w_con', (1.0, 10.0, 50.0)),)"
  if not isinstance(grid, (tuple, list)):
    raise ValueError(f"config.ensemble.grid must be a tuple of (field, values) pairs, {example}; "
                     f"got {grid!r}.")
  axes = []
  for entry in grid:
    if (not isinstance(entry, (tuple, list)) or len(entry) != 2 or not isinstance(entry[0], str)
        or not isinstance(entry[1], (tuple, list)) or not entry[1]):
      raise ValueError("config.ensemble.grid entries are (field, non-empty tuple of values) "
                       f"pairs, {example}; got {entry!r}.")
    name, values = entry[0], tuple(entry[1])
    if name.split(".")[0] in NOT_VMAPPABLE:
      raise ValueError(f"config.ensemble.grid: {name!r} cannot be a grid axis: "
                       f"{name.split('.')[0]} settings are shared by every member of an ensemble. "
                       "Vary them with experiments/sweep.py (seeds: config.ensemble.seeds).")
    probe = ml_collections.ConfigDict(config.to_dict())
    for value in values:  # Checks the name, that it is a field, and each value's type.
      configs.set_field(probe, name, value, "config.ensemble.grid:")
    if name in (a for a, _ in axes):
      raise ValueError(f"config.ensemble.grid lists {name!r} twice.")
    if len(set(map(repr, values))) != len(values):
      raise ValueError(f"config.ensemble.grid: {name!r} has repeated values {values}.")
    axes.append((name, values))
  return axes


def plan(config: ml_collections.ConfigDict) -> Members | None:
  """The members `config.ensemble` asks for, or None for a single run.

  Raises:
    ValueError: naming the bad seed or grid entry.
  """
  seeds, grid = tuple(config.ensemble.seeds), config.ensemble.grid
  if not seeds and not grid:
    return None
  seeds = seeds or (int(config.seed),)
  for seed in seeds:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
      raise ValueError(f"config.ensemble.seeds must hold non-negative ints; got {seed!r}.")
  if len(set(seeds)) != len(seeds):
    raise ValueError(f"config.ensemble.seeds has repeated seeds: {seeds}.")
  axes = _grid_axes(config)
  points = list(itertools.product(*[[(name, v) for v in values] for name, values in axes]))
  return Members(seeds=tuple(int(s) for p in points for s in seeds),
                 points=tuple(p for p in points for _ in seeds),
                 num_seeds=len(seeds), num_points=len(points))


def member_config(config: ml_collections.ConfigDict, seed: int,
                  point=()) -> ml_collections.ConfigDict:
  """The single-run config of a member: `seed`, the point's fields, no ensemble.

  `point` is ((field, value), ...) as in `Members.points`, or a {field: value} dict.
  """
  single = ml_collections.ConfigDict(config.to_dict())
  single.seed = int(seed)
  single.ensemble.seeds, single.ensemble.grid = (), ()
  for name, value in (point.items() if isinstance(point, dict) else point):
    configs.set_field(single, name, value, "Grid point")
  return single


def _program(fn, *args) -> tuple[str, list]:
  """What a traced function computes: its jaxpr's text and constants.

  Equations whose results are all unused (printed `_ = ...`) are left out:
  they cannot change an output, but carry literals (optax computes -lr at init).
  """
  closed = jax.make_jaxpr(fn)(*args)
  lines = [line for line in str(closed.jaxpr).splitlines() if not _DEAD.match(line)]
  return "\n".join(lines), [np.asarray(c) for c in closed.consts]


_DEAD = re.compile(r"^\s*(_:\S+\s*)+=")


def _same_program(a, b) -> bool:
  return a[0] == b[0] and len(a[1]) == len(b[1]) and all(
      x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a[1], b[1]))


def check_vmappable(config: ml_collections.ConfigDict, input_shape: tuple[int, ...]) -> None:
  """Raises ValueError naming any grid field that is more than a value in the state.

  For each axis, the method built at each of its values must give the state the
  same shapes and trace to the same `train_step` and `score` programs as at its
  first value; then one vmapped program computes every member exactly.
  """
  axes = _grid_axes(config)
  base_point = [(name, values[0]) for name, values in axes]
  key = jax.random.key(0)
  batch = jax.ShapeDtypeStruct((2, *input_shape), jnp.float32)

  def signature(point):
    method = methods.make(member_config(config, 0, point), input_shape)
    state = jax.eval_shape(method.init, key, batch)
    shapes = jax.tree_util.tree_flatten_with_path(state)
    programs = {}
    if method.train_step is not None:
      # A method with `embed` trains on its features (`base.Method.embed`), not on images.
      feats = batch if method.embed is None else jax.eval_shape(method.embed, state, batch)
      programs["train_step"] = _program(method.train_step, state, feats, key)
    programs["score"] = _program(method.score, state, batch, key)
    return shapes, programs

  reference = signature(base_point)
  for i, (name, values) in enumerate(axes):
    for value in values[1:]:
      point = list(base_point)
      point[i] = (name, value)
      (leaves, treedef), programs = signature(point)
      ref_leaves, ref_treedef = reference[0]
      if treedef != ref_treedef or any(
          (a.shape, a.dtype) != (b.shape, b.dtype) for (_, a), (_, b) in zip(leaves, ref_leaves)):
        raise ValueError(
            f"config.ensemble.grid: {name}={value!r} changes the shapes of the state, so it "
            "cannot be a vmapped grid axis; vary it with experiments/sweep.py.")
      for fn, program in programs.items():
        if not _same_program(program, reference[1][fn]):
          raise ValueError(
              f"config.ensemble.grid: {name}={value!r} changes the program of "
              f"{config.method}'s {fn} (the method reads it when tracing, not from "
              "state['hparams'] or its optimiser state), so the members cannot share one "
              "vmapped step; vary it with experiments/sweep.py.")


def make(config: ml_collections.ConfigDict, input_shape: tuple[int, ...],
         members: Members) -> base.Method:
  """The stacked method of an ensemble: every function vmapped over the member axis.

  Returns:
    A Method whose
      init(keys (M,), batch) -> state with a leading member axis on every leaf,
        member m initialised by its own grid point's `init` with keys[m];
      train_step(state, batches (M, B, ...), keys (M,)) -> (state, metrics (M,));
      score(state, batch (N, ...), keys (M,)) -> outputs (M, N, ...): every
        member scores the same batch;
      fit (closed-form methods): each member fitted on its own, host side;
      embed(state, batches (M, B, ...)) -> features (M, B, ...), if the
        method has one.
  """
  check_vmappable(config, input_shape)
  point_methods = [methods.make(member_config(config, members.seeds[g * members.num_seeds],
                                              members.points[g * members.num_seeds]),
                                input_shape)
                   for g in range(members.num_points)]
  first = point_methods[0]
  seeds_per_point = members.num_seeds
  init = _stacked_init(point_methods, seeds_per_point, input_shape)

  # The train loop runs these per "members" shard (`sharding.over_members`).
  over_members = _batching(config.ensemble.batching)
  train_step = None if first.train_step is None else over_members(first.train_step, (0, 0, 0))
  score = over_members(first.score, (0, None, 0))
  embed = None if first.embed is None else over_members(first.embed, (0, 0))

  def fit(state, train_x, val_x=None):
    fitted = [point_methods[m // seeds_per_point].fit(member_state(state, m), train_x, val_x)
              for m in range(members.size)]
    return stack(fitted)

  return base.Method(init, train_step, score, fit if first.fit is not None else None,
                     embed=embed)


def _batching(setting: str):
  """over_members(fn, in_axes) -> fn mapped over the leading member axis of the 0 args."""
  if setting not in ("auto", "vmap", "unroll"):
    raise ValueError("config.ensemble.batching must be 'auto', 'vmap' or 'unroll'; got "
                     f"{setting!r}.")
  if setting == "vmap" or (setting == "auto" and jax.default_backend() != "cpu"):
    return lambda fn, in_axes: jax.vmap(fn, in_axes=in_axes)
  return _unrolled


def _unrolled(fn, in_axes):
  """`jax.vmap(fn, in_axes)` (axes 0 or None) as one call of fn per member, stacked."""
  def mapped(*args):
    size = next(jax.tree.leaves(a)[0].shape[0] for a, axis in zip(args, in_axes) if axis == 0)
    outputs = [fn(*[a if axis is None else jax.tree.map(lambda leaf: leaf[m], a)
                    for a, axis in zip(args, in_axes)]) for m in range(size)]
    return stack(outputs)
  return mapped


def _stacked_init(point_methods, seeds_per_point: int, input_shape):
  """init(keys (M,), batch) of the stacked state, member m by its grid point's `init`.

  When the grid points' inits compute the same arrays (they differ only in
  scalars: loss weights, learning rates), one vmapped init of the first point
  gives every member's arrays and each point contributes its scalars, whose
  programs XLA reduces to constants; otherwise each point's init runs for its
  members (a larger program to compile).
  """
  first = point_methods[0]

  def per_point(fns, keys, batch):
    """fns[g] vmapped over the keys of point g's members, concatenated in member order."""
    parts = [jax.vmap(fn, in_axes=(0, None))(
        keys[g * seeds_per_point:(g + 1) * seeds_per_point], batch) for g, fn in enumerate(fns)]
    return jax.tree.map(lambda *a: jnp.concatenate(a), *parts) if len(parts) > 1 else parts[0]

  if len(point_methods) == 1:
    return lambda keys, batch: jax.vmap(first.init, in_axes=(0, None))(keys, batch)
  key = jax.random.key(0)
  example = jax.ShapeDtypeStruct((2, *input_shape), jnp.float32)
  leaves, treedef = jax.tree.flatten(jax.eval_shape(first.init, key, example))
  is_scalar = [leaf.ndim == 0 for leaf in leaves]

  def part(method, scalars: bool):
    def fn(k, batch):
      return [leaf for leaf, s in zip(jax.tree.leaves(method.init(k, batch)), is_scalar)
              if s == scalars]
    return fn

  reference = _program(part(first, False), key, example)
  if not all(_same_program(_program(part(m, False), key, example), reference)
             for m in point_methods[1:]):
    return functools.partial(per_point, [m.init for m in point_methods])

  def init(keys, batch):
    arrays = iter(jax.vmap(part(first, False), in_axes=(0, None))(keys, batch))
    scalars = iter(per_point([part(m, True) for m in point_methods], keys, batch))
    return jax.tree.unflatten(treedef, [next(scalars) if s else next(arrays) for s in is_scalar])

  return init


def stack(states: list):
  """Member states stacked along a new leading (member) axis."""
  return jax.tree.map(lambda *leaves: jnp.stack(leaves), *states)


def member_state(state, m: int):
  """Member m's state out of a stacked one, as host (numpy) arrays."""
  return jax.tree.map(lambda leaf: np.asarray(jax.device_get(leaf))[m], state)
