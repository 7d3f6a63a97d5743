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
"""

from typing import Any, Callable, NamedTuple

import jax
import numpy as np
import optax

State = dict[str, Any]
Metrics = dict[str, jax.Array]


class Method(NamedTuple):
  init: Callable[[jax.Array, jax.Array], State]
  train_step: Callable[[State, jax.Array, jax.Array], tuple[State, Metrics]] | None
  score: Callable[[State, jax.Array, jax.Array], dict[str, jax.Array]]
  fit: Callable[..., State] | None = None
  generate: Callable[[State, jax.Array], jax.Array] | None = None


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
