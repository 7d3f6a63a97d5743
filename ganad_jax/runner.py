"""What a run is made of (`Run`, `build`) and its jitted functions on the device mesh.

`build` turns a config into the method (stacked for an ensemble, see
`ganad_jax.ensemble`), the root keys split by purpose (`Keys`), the
("members", "data") mesh of `ganad_jax.sharding` and the checkpoint
compatibility record. The rest wraps the method for that mesh: the train step
that gathers its own batch on the device (`make_train_step`, jitted by
`step_function`) and the state's init (`abstract_init`, `init_state`);
scoring a run's state is `ganad_jax.scoring.Scorer`. The training loop
(`ganad_jax.train`) and every consumer of a trained workdir
(`ganad_jax.workdir.restore`) build their run here.

With the patch protocol (`config.patch.size` > 0, `ganad_jax.patches`) the
run's method is built for (c, c, C) crops while every split stays whole
images: the train step crops its gathered batch, init sees a corner crop, a
closed-form `fit` sees the splits' tiles, and `scoring.Scorer` scores every
tile of a split and stitches the outputs back to the images. No method knows.
"""

import contextlib
import json
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ganad_jax import configs
from ganad_jax import data
from ganad_jax import ensemble
from ganad_jax import methods
from ganad_jax import patches
from ganad_jax import run_outputs
from ganad_jax import sharding
from ganad_jax.methods import base

P = sharding.P


class Keys(NamedTuple):
  """The root keys of a run, one per purpose; (M,) keys each for an ensemble.

  Attributes:
    init: the state's initialisation.
    data: the per-epoch permutations, `fold_in(data, epoch)`.
    step: the per-step keys, `fold_in(step, step_index)`.
    score: the key every scored batch gets.
  """
  init: jax.Array
  data: jax.Array
  step: jax.Array
  score: jax.Array


def root_keys(seed: int) -> Keys:
  """One root key `jax.random.key(seed)` split by purpose."""
  return Keys(*jax.random.split(jax.random.key(seed), 4))


def batch_indices(data_key, step, num_examples: int, batch_size: int):
  """Indices of the batch for `step`: epoch-wise permutations, remainder dropped."""
  steps_per_epoch = num_examples // batch_size
  epoch, offset = step // steps_per_epoch, step % steps_per_epoch
  perm = jax.random.permutation(jax.random.fold_in(data_key, epoch), num_examples)
  return jax.lax.dynamic_slice_in_dim(perm, offset * batch_size, batch_size)


def make_train_step(method, batch_size: int, num_examples: int | None = None,
                    stacked: bool = False, crop_size: int = 0, embed_in_step: bool = False):
  """Wraps `method.train_step` so that it gathers its own batch on the device.

  Args:
    method: a Method, or the stacked Method of an ensemble.
    batch_size: examples per batch (per member).
    num_examples: training examples to draw from (default: all rows of
      `train_x`; a row-sharded `train_x` has padding rows after them).
    stacked: `method` is an ensemble's: `state`, `data_key` and `step_key`
      have a leading member axis and every member gathers its own batch, the
      one its seed would give a single run, from the shared `train_x`.
    crop_size: > 0: the method sees one random crop_size x crop_size window
      of each image (the patch protocol, `patches.random_crops`), drawn
      from a key split off the step's, so that it too depends only on
      (seed, step).
    embed_in_step: `train_x` holds images and the method's `embed` turns each
      gathered batch (its crops) into the features its `train_step` takes;
      False: `train_x` already holds them for a method with `embed`
      (`embed_training_split`), a pytree of arrays with leading axis N.

  Returns:
    step_fn(state, train_x, data_key, step_key) -> (state, metrics).
  """
  def batch_and_key(train_x, step, data_key, step_key):
    n = jax.tree.leaves(train_x)[0].shape[0] if num_examples is None else num_examples
    idx = batch_indices(data_key, step, n, batch_size)
    key = jax.random.fold_in(step_key, step)
    batch = jax.tree.map(lambda x: x[idx], train_x)
    if not crop_size:
      return batch, key
    crop_key, key = jax.random.split(key)
    return patches.random_crops(crop_key, batch, crop_size), key

  def step_fn(state, train_x, data_key, step_key):
    if stacked:
      batch, key = jax.vmap(batch_and_key, in_axes=(None, 0, 0, 0))(
          train_x, state["step"], data_key, step_key)
    else:
      batch, key = batch_and_key(train_x, state["step"], data_key, step_key)
    batch = jax.tree.map(lambda b: sharding.constrain(b, sharding.batch_spec(stacked)), batch)
    if embed_in_step:
      batch = method.embed(state, batch)
    return method.train_step(state, batch, key)

  return step_fn


def checkpoint_meta(config, input_shape, data_sha256: str | None = None) -> dict:
  """What a checkpoint must match to be restored into this run (`checkpoints.restore_latest`).

  Args:
    config: the run's config.
    input_shape: shape of one example.
    data_sha256: for a training run, the digest of the data training sees
      (`data_digest`). With it the record also holds `run`: every config field
      except `configs.RESUME_NEUTRAL_FIELDS` (data, protocol, seed, train
      settings, ...) and this digest, so that a checkpoint of another run is
      never resumed. Without it (scoring a trained workdir) only the model
      (method, shape, architecture, optimiser, dtype, ensemble) is checked.

  Returns:
    The record, in its JSON form.
  """
  # The optimiser's settings live in its restored state (inject_hyperparams),
  # so a resume with other settings would silently ignore them: refuse it.
  meta = {"method": config.method, "input_shape": list(input_shape),
          "model": config.model.to_dict(), "optim": config.optim.to_dict(),
          "compute_dtype": config.compute_dtype}
  if config.method in config:  # The method's own section: its weights live in the state.
    meta[config.method] = config[config.method].to_dict()
  if ensemble.plan(config) is not None:  # A stacked state: its members must match too.
    meta["ensemble"] = {"seeds": config.ensemble.seeds, "grid": config.ensemble.grid}
  if config.patch.size:  # The nets take the crops, not the images of `input_shape`.
    meta["patch"] = config.patch.to_dict()
  weights = methods.weights_record(config)  # Pretrained weights: file digest, normalisation.
  if weights is not None:
    meta["weights"] = weights
  if data_sha256 is not None:
    meta["run"] = dict(configs.run_record(config, configs.RESUME_NEUTRAL_FIELDS),
                       data_sha256=data_sha256)
  return json.loads(json.dumps(meta))  # As it reads back from disk: tuples become lists.


def data_digest(splits: data.Splits) -> str:
  """SHA-256 of the data training sees: the training split and the validation normals.

  (Early stopping selects the state on the validation normals.) Test data are
  scored after training, from the data of the run that scores them.
  """
  return data.digest(splits.train.x, splits.val.x)


class Run(NamedTuple):
  """What a run is made of, built once from its config (`build`).

  Attributes:
    method: the method, or for an ensemble its stacked method (`ensemble.make`).
    members: the ensemble's members, or None for a single run.
    keys: the root `Keys` on the mesh; (M,) each for an ensemble.
    meta: the checkpoint compatibility record.
    mesh: the ("members", "data") device mesh.
    batch_size: the training batch size (per member).
    patch: the patch protocol (`patches.Protocol`), or None: whole images.
  """
  method: base.Method
  members: ensemble.Members | None
  keys: Keys
  meta: dict
  mesh: jax.sharding.Mesh
  batch_size: int
  patch: patches.Protocol | None = None

  @property
  def stacked(self) -> bool:
    return self.members is not None

  @property
  def num_members(self) -> int:
    return self.members.size if self.stacked else 1

  def key_sharding(self):
    return jax.sharding.NamedSharding(self.mesh, P("members") if self.stacked else P())


def build(config: ml_collections.ConfigDict, input_shape, num_train: int | None = None,
          data_sha256: str | None = None) -> Run:
  """The method (stacked for an ensemble), keys, mesh and checkpoint record of a run.

  Args:
    config: the run's config (`configs.validate`d by the caller).
    input_shape: one example's shape, (H, W, C) or (F,); with the patch
      protocol the method is built for (c, c, C) crops of (H, W, C) images.
    num_train: training examples; a closed-form method (no `train_step`)
      whose split is smaller than `config.train.batch_size` inits on them all.
    data_sha256: a training run's `data_digest`, for the checkpoint record
      (`checkpoint_meta`).

  Raises:
    ValueError: from `ensemble.plan` / `ensemble.make` (a bad seed or grid
      entry) or `methods.make` (an unknown method, or inputs its nets do not
      take: with the patch protocol the message names patch.size), naming
      the field; the patch protocol on inputs that are not images.
  """
  input_shape = tuple(input_shape)
  protocol = patches.from_config(config)
  net_shape = input_shape
  if protocol is not None:
    if len(input_shape) != 3:
      raise ValueError(f"patch.size={protocol.size}: the patch protocol needs images (H, W, C); "
                       f"the data are of shape {input_shape}.")
    net_shape = (protocol.size, protocol.size, input_shape[2])
  members = ensemble.plan(config)
  with _crops_named(protocol, input_shape):
    if members is None:
      method = methods.make(config, net_shape)
    else:
      method = ensemble.make(config, net_shape, members)
  if protocol is not None and method.fit is not None:
    method = method._replace(fit=_tiled_fit(method.fit, protocol))
  if members is None:
    keys = root_keys(config.seed)
  else:
    # Member m's keys are those of the single run with its seed.
    keys = Keys(*(jnp.stack(k) for k in zip(*(root_keys(s) for s in members.seeds))))
  batch_size = config.train.batch_size
  if method.train_step is None and num_train is not None:
    batch_size = min(batch_size, num_train)  # Only init sees a batch.
  split = (batch_size,) if method.train_step is not None else ()
  mesh = sharding.make_mesh(config.mesh, members.size if members else 1,
                            split + (config.eval.batch_size,))
  spec = P("members") if members else P()
  keys = Keys(*(sharding.put(mesh, k, spec) for k in keys))
  return Run(method, members, keys, checkpoint_meta(config, input_shape, data_sha256), mesh,
             batch_size, protocol)


@contextlib.contextmanager
def _crops_named(protocol: patches.Protocol | None, input_shape):
  """Adds the crops' shape to a ValueError of the nets (which name data.image_size)."""
  try:
    yield
  except ValueError as e:
    if protocol is None:
      raise
    crop = (protocol.size, protocol.size, *input_shape[2:])
    raise ValueError(f"{e} (With patch.size={protocol.size} the nets see {crop} crops of the "
                     f"{tuple(input_shape)} images.)") from e


def _tiled_fit(fit, protocol: patches.Protocol):
  """A closed-form `fit` on every tile of the training (and validation) images."""
  def tiled(state, train_x, val_x=None):
    return fit(state, patches.tile(train_x, protocol),
               None if val_x is None else patches.tile(val_x, protocol))
  return tiled


def embeds_once(run: Run, config: ml_collections.ConfigDict) -> bool:
  """Whether training draws from the training split's features computed once (`Method.embed`).

  Not with the patch protocol (every step draws new crops) nor for an
  ensemble (each member's state holds its own backbone): their step embeds.
  """
  return (run.method.embed is not None and run.patch is None and not run.stacked
          and bool(config.features.once))


def embed_training_split(run: Run, state, train_x: np.ndarray, batch_size: int,
                         max_memory_mb: float):
  """`run.method.embed` over the training split, in batches: the features training draws from.

  Args:
    run: a single run (not an ensemble) whose method has `embed`.
    state: its state (the frozen backbone's variables live there).
    train_x: (N, ...) the training images.
    batch_size: images per embedded batch (`config.eval.batch_size`).
    max_memory_mb: `config.features.max_memory_mb`.

  Returns:
    The features, a pytree of numpy arrays with leading axis N.

  Raises:
    ValueError: features over `max_memory_mb`, before any is computed,
      naming their size and the field.
  """
  shapes = jax.eval_shape(run.method.embed, state,
                          jax.ShapeDtypeStruct((1, *train_x.shape[1:]), train_x.dtype))
  need = len(train_x) * sum(s.size * s.dtype.itemsize for s in jax.tree.leaves(shapes))
  if need > max_memory_mb * 2**20:
    raise ValueError(f"features of the {len(train_x)} training examples need "
                     f"{need / 2**20:.0f} MB, over features.max_memory_mb={max_memory_mb}; "
                     "raise it, lower pretrained.input_size, or set features.once=False "
                     "to compute them in every train step.")
  embed = jax.jit(run.method.embed)
  progress = run_outputs.Progress(len(train_x), unit="image",
                                  label="features of the training split")
  parts, done = [], 0
  for batch, n in base.padded_batches(train_x, batch_size):
    parts.append(jax.tree.map(lambda f, n=n: np.asarray(f)[:n], embed(state, batch)))
    done += n
    progress.update(done)
  return jax.tree.map(lambda *p: np.concatenate(p), *parts)


def step_function(run: Run, state_sharding, train_x_sharding, num_train: int,
                  embed_in_step: bool = False):
  """The run's jitted train step on its mesh (state donated).

  step_fn(state, train_x, data_key, step_key) -> (state, metrics); an
  ensemble's runs per "members" shard (`sharding.over_members`). With
  `embed_in_step` the step embeds its batch (`make_train_step`).
  """
  step_fn = make_train_step(run.method, run.batch_size, num_train, run.stacked,
                            run.patch.size if run.patch else 0, embed_in_step)
  if run.stacked:
    members = P("members")
    step_fn = sharding.over_members(step_fn, run.mesh, (members, P(), members, members),
                                    (members, members))
  key_sharding = run.key_sharding()
  return jax.jit(step_fn, in_shardings=(state_sharding, train_x_sharding, key_sharding,
                                        key_sharding),
                 out_shardings=(state_sharding, sharding.replicated(run.mesh)), donate_argnums=0)


def _init_batch(run: Run, batch):
  """What `init` sees of a training batch: the batch, or its corner crops (patch protocol)."""
  return batch if run.patch is None else patches.corner_crops(batch, run.patch.size)


def abstract_init(run: Run, batch):
  """(abstract state with its shardings, the shardings) of `run.method.init`."""
  with _crops_named(run.patch, batch.shape[1:]):
    abstract = jax.eval_shape(run.method.init, run.keys.init, _init_batch(run, batch))
  shardings = sharding.state_sharding(run.mesh, abstract, run.stacked)
  return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                      abstract, shardings), shardings


def init_state(run: Run, batch, state_sharding):
  """`run.method.init` on the mesh, placed with `state_sharding` (from `abstract_init`)."""
  with jax.set_mesh(run.mesh):
    # Computed replicated, then split: XLA cannot partition the grouped
    # convolutions of a vmapped init over the member axis.
    state = jax.jit(run.method.init, out_shardings=sharding.replicated(run.mesh))(
        run.keys.init, _init_batch(run, batch))
  return sharding.reshard(state, state_sharding)
