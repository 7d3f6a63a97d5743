"""One device mesh with axes ("members", "data"), and the shardings of a run on it.

  mesh = sharding.make_mesh(config.mesh, num_members, batch_sizes)

Ensemble members (the leading axis of a stacked state, `ganad_jax.ensemble`) are
spread over "members": they never communicate, so that axis scales perfectly.
Every batch is split over "data" (the state is replicated along it and XLA
all-reduces the gradients); so are the samples of a latent search. Steps are
`jit`ted with `NamedSharding`s and `with_sharding_constraint`, no `pmap`.

An ensemble's stacked functions run under `over_members` (`shard_map`, manual
over "members", automatic over "data").

Multi-host: `initialize_distributed` (from the flags of experiments/train.py)
before JAX is used; then `jax.devices()` lists every host's devices and the
mesh spans them all: "data" across the hosts, "members" of size 1 (every host
holds every member, so checkpoints and reports see whole states), and with
`mesh.train_data = 'sharded'` each host places only its own rows of the
training set (`jax.make_array_from_process_local_data`).
"""

import math

from absl import logging
import jax
import ml_collections
import numpy as np

P = jax.sharding.PartitionSpec
AXES = ("members", "data")
TRAIN_DATA = ("replicated", "sharded")


def initialize_distributed(coordinator_address: str, num_processes: int, process_id: int) -> None:
  """`jax.distributed.initialize` for a multi-process run (call before any other JAX use).

  CPU processes talk through gloo collectives; GPU / TPU through their own.
  """
  if num_processes < 1 or not 0 <= process_id < num_processes:
    raise ValueError(f"process_id must lie in [0, num_processes); got process_id={process_id}, "
                     f"num_processes={num_processes}.")
  if num_processes == 1:
    return
  if not coordinator_address:
    raise ValueError("A multi-process run needs --coordinator_address=host:port "
                     "(the address of process 0).")
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=coordinator_address,
                             num_processes=num_processes, process_id=process_id)
  logging.info("Process %d of %d: %d local of %d devices.", jax.process_index(),
               jax.process_count(), jax.local_device_count(), jax.device_count())


def _auto_devices() -> int:
  if jax.process_count() > 1 or jax.default_backend() != "cpu":
    return jax.device_count()
  return 1


def make_mesh(config: ml_collections.ConfigDict, num_members: int,
              batch_sizes: tuple[int, ...]) -> jax.sharding.Mesh:
  """The ("members", "data") mesh for a run of `num_members` members (1 for a single run).

  Args:
    config: the `mesh` sub-config.
    num_members: ensemble members (1 without an ensemble).
    batch_sizes: every batch size that is split over "data" (train, eval).

  Raises:
    ValueError: naming the field when the sizes do not divide what they split.
  """
  if config.train_data not in TRAIN_DATA:
    raise ValueError(f"config.mesh.train_data must be one of {TRAIN_DATA}; "
                     f"got {config.train_data!r}.")
  n = int(config.devices) or _auto_devices()
  if not 1 <= n <= jax.device_count():
    raise ValueError(f"config.mesh.devices={config.devices} but {jax.device_count()} devices "
                     "exist (0 = auto).")
  multi = jax.process_count() > 1
  if multi and n != jax.device_count():
    raise ValueError(f"A multi-process run uses every device: config.mesh.devices must be 0 or "
                     f"{jax.device_count()}; got {config.devices}.")
  members = int(config.members) or (1 if multi else math.gcd(n, num_members))
  if n % members or num_members % members:
    raise ValueError(f"config.mesh.members={members} must divide both the device count ({n}) "
                     f"and the number of ensemble members ({num_members}).")
  if multi and members > 1:
    raise ValueError("Across processes the members axis must be 1 (config.mesh.members=0 or 1): "
                     "checkpoints and results need every member's state on every host.")
  data = n // members
  for size in batch_sizes:
    if size % data:
      raise ValueError(f"The data axis has {data} devices (config.mesh.devices={n}, "
                       f"members={members}), which does not divide the batch size {size} "
                       "(config.train.batch_size / config.eval.batch_size); change one of them.")
  devices = np.asarray(jax.devices()[:n]).reshape(data, members).T  # Members inside a host.
  return jax.sharding.Mesh(devices, AXES)


def replicated(mesh: jax.sharding.Mesh) -> jax.sharding.NamedSharding:
  return jax.sharding.NamedSharding(mesh, P())


def state_sharding(mesh: jax.sharding.Mesh, tree, stacked: bool):
  """Shardings for a state pytree: the leading member axis over "members", or replicated."""
  def one(leaf):
    if stacked and np.ndim(leaf) >= 1:
      return jax.sharding.NamedSharding(mesh, P("members"))
    return replicated(mesh)
  return jax.tree.map(one, tree)


def batch_spec(stacked: bool) -> P:
  """The PartitionSpec of a training batch: (members, batch, ...) or (batch, ...)."""
  return P("members", "data") if stacked else P("data")


def constrain(x, spec: P):
  """`with_sharding_constraint(x, spec)` under a mesh context that has the axes, else x.

  The methods and the latent search call it without knowing whether they run
  sharded: the train loop and `scoring.Scorer` trace them inside `jax.set_mesh`.
  Axes that are manual here (inside `over_members`) are left out of the spec.
  """
  mesh = jax.sharding.get_abstract_mesh()
  names = [a for part in spec if part is not None
           for a in (part if isinstance(part, tuple) else (part,))]
  if mesh.empty or any(a not in mesh.axis_names for a in names):
    return x
  manual = set(mesh.manual_axes)
  if manual:
    def auto(part):
      parts = tuple(a for a in (part if isinstance(part, tuple) else (part,)) if a not in manual)
      return parts if len(parts) > 1 else (parts[0] if parts else None)
    spec = P(*(None if part is None else auto(part) for part in spec))
  if all(part is None for part in spec):
    return x
  return jax.lax.with_sharding_constraint(x, spec)


def over_members(fn, mesh: jax.sharding.Mesh, in_specs, out_specs):
  """`fn` run by every "members" shard on its own members (`shard_map`, manual over
  "members" only; inside, "data" stays automatic).

  Members never communicate, so this is exact; it also keeps XLA's SPMD
  partitioner away from the member axis of vmapped convolutions (which it
  turns into grouped convolutions that it cannot split by group).
  """
  return jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs,
                       axis_names={"members"}, check_vma=False)


def axis_size(name: str) -> int:
  """Size of mesh axis `name` in the current mesh context (1 outside one)."""
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty or name not in mesh.axis_names:
    return 1
  return int(mesh.shape[name])


def put_train_data(mesh: jax.sharding.Mesh, x: np.ndarray, how: str) -> jax.Array:
  """The training set on the mesh: replicated, or its rows split over the "data" axis.

  'sharded' pads the rows to a multiple of the "data" axis size (the padding
  is never drawn: batches index only the first len(x) rows); each process
  passes only its own rows.
  """
  if how == "replicated":
    return jax.make_array_from_process_local_data(replicated(mesh), x, x.shape)
  sharding = jax.sharding.NamedSharding(mesh, P("data"))  # Each members group holds a copy.
  pad = -len(x) % mesh.shape["data"]
  if pad:
    x = np.concatenate([x, np.zeros((pad,) + x.shape[1:], x.dtype)])
  rows = _process_rows(sharding, x.shape)
  return jax.make_array_from_process_local_data(sharding, x[rows], x.shape)


def _process_rows(sharding, shape) -> slice:
  """The contiguous rows of a row-sharded global array held by this process's devices."""
  index_map = sharding.addressable_devices_indices_map(shape)
  starts = sorted(idx[0].start or 0 for idx in index_map.values())
  stops = sorted(shape[0] if idx[0].stop is None else idx[0].stop for idx in index_map.values())
  return slice(starts[0], stops[-1])


def put(mesh: jax.sharding.Mesh, x, spec: P = P()):
  """A host array or an uncommitted jax.Array (the same on every process) placed with `spec`."""
  return reshard(x, jax.sharding.NamedSharding(mesh, spec))


def reshard(tree, shardings):
  """`tree` placed with `shardings` (one, or a matching tree).

  `jax.device_put` cannot target devices of other processes from a jax.Array;
  a jitted identity can.
  """
  if jax.process_count() > 1:
    return jax.jit(lambda t: t, out_shardings=shardings)(tree)
  return jax.device_put(tree, shardings)


def to_host(tree):
  """numpy copies of a pytree of (replicated or addressable) arrays."""
  return jax.tree.map(lambda a: np.asarray(jax.device_get(a)) if isinstance(a, jax.Array)
                      else np.asarray(a), tree)

