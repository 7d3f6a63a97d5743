"""The method interface: three pure functions over one state pytree.

A method is `make(config, input_shape) -> Method`. The trainer, the ensemble and
sharding wrappers, the evaluation script and the Detector API only ever call
these three functions, so a new method never adds a branch to shared code.

  init(key, batch) -> state
      `state` is a dict pytree: params and batch stats of every net, optimiser
      states and `step`. It is what gets jitted, vmapped, sharded and saved.
  train_step(state, batch, key) -> (state, metrics)
      Pure; `metrics` is a flat dict of scalars and must contain "loss".
  score(state, batch, key) -> outputs
      Eval mode (BatchNorm uses running statistics). `outputs["score"]` (N,)
      is the anomaly score, higher = more anomalous; optional entries:
      "map" (N, H, W) anomaly map, "recon" (N, ...) reconstruction, and any
      "score_<name>" alternative scores, which are evaluated and reported too.

A method that is fitted in closed form rather than by gradient steps (the
Gaussian scorer) sets `train_step=None` and provides
  fit(state, train_x, val_x=None) -> state
      Host side, once, on the whole normal training split (a numpy array);
      `val_x`, the validation normals, may steer choices that need held-out
      data (never the test split).

A method with a generator (AnoGAN, EGBAD) also provides
  generate(state, z) -> x
      Eval mode, z (N, config.model.nz); used for the latent-walk figure.

A method whose reference code scores differently at test time (GANomaly and
Skip-GANomaly: BatchNorm left in train mode) also provides
  paper_score: `PaperScore`
      How the reference scores its test split; used only by the labelled
      paper_repro protocol (`ganad_jax.paper_repro`), never for the run's
      metrics.

A method that trains on frozen features of the images (a pretrained backbone's
stages, resized or pooled; the flows) may provide
  embed(state, x) -> features
      Deterministic, nothing in it trained: a pytree of float32 arrays with
      leading axis N. Its `train_step` then receives batches of features, not
      images: `train` computes them once over the training split and keeps
      them on the device (`config.features`, `runner.embed_training_split`);
      with the patch protocol or an ensemble the step computes them on each
      batch. `init` and `score` always receive images.

A method whose nets make useful features (AE, SSIM-AE, VAE, AnoGAN, EGBAD)
exports them in `features`, {net name: `FeatureNet`}: the Gaussian scorer's
features="workdir" reads a trained run's nets through it.

The helpers below are what every method's functions are made of: Adam, one
net applied with its BatchNorm statistics, the state's hparams and next
state, the input-shape check, padded batches.
"""

import math
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

State = dict[str, Any]
Metrics = dict[str, jax.Array]


class FeatureNet(NamedTuple):
  """One net of a trained method, as a feature extractor.

  Attributes:
    select: state -> the net's variables {"params", "batch_stats"} (the EMA
      params where the method scores with them); a small pytree the Gaussian
      scorer keeps in its own state.
    apply: (variables, x (N, ...)) -> (output (N, ...), features dict of
      (N, ...) arrays), in eval mode (BatchNorm with running statistics).
  """
  select: Callable[[State], Any]
  apply: Callable[[Any, jax.Array], tuple[jax.Array, dict[str, jax.Array]]]


class PaperScore(NamedTuple):
  """How a method's reference code scores the test split (for `ganad_jax.paper_repro` only).

  Attributes:
    score: (state, batch, key) -> outputs, as `Method.score` but computed as
      the reference does (e.g. BatchNorm in train mode: each batch normalised
      by its own statistics; the state's running statistics are not updated).
    test_order: the reference's test loader on MNIST and image folders:
      "shuffled", or "sorted" (not shuffled, normals first, so every batch
      but one holds a single label, which train-mode BatchNorm then sees).
  """
  score: Callable[[State, jax.Array, jax.Array], dict[str, jax.Array]]
  test_order: str = "shuffled"


class Method(NamedTuple):
  init: Callable[[jax.Array, jax.Array], State]
  train_step: Callable[[State, jax.Array, jax.Array], tuple[State, Metrics]] | None
  score: Callable[[State, jax.Array, jax.Array], dict[str, jax.Array]]
  fit: Callable[..., State] | None = None
  generate: Callable[[State, jax.Array], jax.Array] | None = None
  features: dict[str, FeatureNet] | None = None
  paper_score: PaperScore | None = None
  embed: Callable[[State, jax.Array], Any] | None = None


def check_input_shape(input_shape: tuple[int, ...], name: str,
                      images_only: str | None = None) -> bool:
  """Whether `input_shape` (no batch axis) is a square image (H, H, C) rather than a vector (F,).

  Args:
    input_shape: one example's shape.
    name: the method, as messages name it (e.g. "GANomaly").
    images_only: None accepts vectors; else vectors are refused and this
      advice ends the message (e.g. "use 'ganomaly' for tabular vectors").

  Raises:
    ValueError: any other rank, a non-square image, or a vector with
      `images_only`; the message gives the shape.
  """
  if len(input_shape) == 3:
    if input_shape[0] != input_shape[1]:
      raise ValueError(f"{name}'s nets need square images; got {input_shape}.")
    return True
  if images_only is not None:
    raise ValueError(f"{name} needs images (H, W, C); got inputs of shape {input_shape}: "
                     f"{images_only}.")
  if len(input_shape) != 1:
    raise ValueError(f"{name} takes images (H, W, C) or vectors (F,); got {input_shape}.")
  return False


def check_weights(section: ml_collections.ConfigDict, prefix: str, names) -> None:
  """ValueError naming the field unless every `names` weight is finite and >= 0."""
  for name in names:
    value = float(section[name])
    if not math.isfinite(value) or value < 0.0:
      raise ValueError(f"{prefix}.{name}={section[name]!r} must be a finite number >= 0.")


def hparams(section: ml_collections.ConfigDict, names) -> dict[str, jax.Array]:
  """`state["hparams"]`: float32 scalars from the config, vmappable per grid member."""
  return {name: jnp.asarray(section[name], jnp.float32) for name in names}


def apply(module: nn.Module, params, batch_stats, *args, train: bool):
  """(module(*args, train=train), batch stats): in train mode the updated statistics.

  Eval mode uses the running statistics and returns `batch_stats` unchanged;
  a net without BatchNorm returns its (empty) `batch_stats` either way.
  """
  variables = {"params": params, "batch_stats": batch_stats}
  if train:
    out, updates = module.apply(variables, *args, train=True, mutable=["batch_stats"])
    return out, updates.get("batch_stats", batch_stats)
  return module.apply(variables, *args, train=False), batch_stats


def next_state(state: State, **updates) -> State:
  """The state after one train step: `updates` replace their entries, `step` + 1."""
  return {**state, "step": state["step"] + 1, **updates}


def adam(optim_config) -> optax.GradientTransformation:
  """Adam from `config.optim`; inject_hyperparams keeps the learning rate in the
  optimiser state, so it is checkpointed and can be vmapped as a hyperparameter."""
  return optax.inject_hyperparams(optax.adam)(
      learning_rate=optim_config.lr, b1=optim_config.b1, b2=optim_config.b2)


def adam_update(tx: optax.GradientTransformation, grads, opt_state, params):
  """(new params, new optimiser state): one `tx` step of `params` along `grads`."""
  updates, opt_state = tx.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state


def padded_batches(x: np.ndarray, batch_size: int):
  """Yields (batch, n) over `x` in batches of min(batch_size, len(x)) rows.

  The last batch is padded by repeating its final row, so one compilation of
  a jitted function serves every batch; n is the number of real rows.
  """
  batch_size = min(int(batch_size), len(x))
  for start in range(0, len(x), batch_size):
    batch = x[start:start + batch_size]
    n = len(batch)
    if n < batch_size:
      batch = np.concatenate([batch, np.repeat(batch[-1:], batch_size - n, axis=0)])
    yield batch, n
