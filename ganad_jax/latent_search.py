"""Batched AnoGAN latent search: find z with G(z) close to x, for thousands of x at once.

For a query x the search minimises, over z, the AnoGAN loss (Schlegl et al. 2017)

    loss(z; x) = (1 - lam) * sum |x - G(z)| + lam * sum |f(x) - f(G(z))|,

with `lam` = `config.lam` (0.1) and f an intermediate discriminator layer. The
loss at the returned z is the anomaly score and |x - G(z)| the anomaly map.

Every sample is an independent problem with its own z, its own optimiser state
(Adam moments and step count) and, with `restarts` > 1, several independent
starting points of which the best is kept. The whole chunk is advanced by one
`lax.scan` over steps; the gradient of the summed per-sample losses is, because
the samples never interact (G and f must be in eval mode: BatchNorm with
running statistics), the stack of the per-sample gradients. A sample's result
therefore depends only on its own x and the key:

* random starting points come from `fold_in(key, content_hash(x_i))`, a hash
  of the sample's bytes computed inside the graph, not from its position, so
  shuffling or re-batching the inputs changes no score (identical inputs get
  identical starting points);
* chunks are padded to `chunk_size` (one compilation serves every chunk) and
  padded rows are masked out of the early stop and dropped.

Early stopping (`patience` > 0) freezes a sample (masked update) once its loss
has not improved by more than `min_delta` for `patience` steps; when every
sample of a chunk is frozen the remaining steps are skipped (`lax.cond`), so a
chunk costs what its slowest sample needs. `steps_used` reports the number of
steps (loss and gradient evaluations) each sample was active for.

Step t evaluates the loss at z_t, then moves to z_{t+1}. The returned z is the
evaluated iterate with the lowest loss (`select='best'`, the default) or the
last evaluated one (`select='final'`: z_{steps-1}, whose loss is what the
original AnoGAN code and PyOD report). Either way `score` is the loss of the
returned z, and x_hat, the map and the score terms come from that same
evaluation: the search needs no pass after its last step.

Conventions: `lam` weights the feature term as in the AnoGAN paper
((1 - lam) * residual + lam * feature); both terms are sums, not means, over
pixels / features. `score_residual` is the unweighted sum |x - G(z)|,
`score_feature` the unweighted sum |f(x) - f(G(z))|.
"""

import functools
from typing import Any, Callable, NamedTuple

import flax.linen as nn
from flax.linen import linear as flax_linear
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

Array = jax.Array
GenerateFn = Callable[[Array], Array]  # z (N, nz) -> x_hat (N, *shape)
FeatureFn = Callable[[Array], Array]  # x (N, *shape) -> features (N, ...)
InitFn = Callable[[Array], Array]  # x (N, *shape) -> z (N, nz), e.g. an encoder

INITS = ("zeros", "normal", "truncated_normal", "encoder")
SCHEDULES = ("constant", "piecewise")
OPTIMIZERS = ("adam", "sgd")
SELECTS = ("best", "final")


def default_config() -> ml_collections.ConfigDict:
  """The `search` sub-config with every field at its default.

  Fields:
    lam: weight of the feature term; the residual term gets 1 - lam (0.1: AnoGAN).
    steps: optimisation steps per sample (500 in most AnoGAN code).
    lr: learning rate (the initial one for schedule 'piecewise').
    schedule: 'constant' | 'piecewise' (lr * piecewise_scales at
      piecewise_boundaries; defaults give 0.01 -> 0.001 @ 200 -> 0.0005 @ 300).
    piecewise_boundaries: steps at which the learning rate is rescaled.
    piecewise_scales: multiplicative factor applied at each boundary.
    optimizer: 'adam' | 'sgd'.
    b1, b2: Adam's moment decays.
    init: 'zeros' | 'normal' | 'truncated_normal' (in [-2, 2]) | 'encoder'
      (the `z_init_fn` warm start, e.g. an EGBAD / f-AnoGAN encoder).
    init_scale: standard deviation of random starting points. With 'zeros' or
      'encoder', restart 0 starts at 0 / E(x) and restarts >= 1 at that point
      plus init_scale * N(0, 1).
    restarts: independent starting points per sample; the best is kept.
    patience: early stop after this many steps without improvement (0 = off).
    min_delta: an improvement must lower the loss by more than this.
    select: 'best' (best iterate, final included) | 'final' (last iterate).
    chunk_size: samples searched together in one compiled chunk; 0 = auto:
      128 for images (the fastest on a 2-core CPU: the activations stay in
      cache; raise it on a GPU), 8192 for vectors.
    feature_layer: name of the discriminator layer used as f (read by the
      methods that build `feature_fn`; 'penultimate' or 'block<i>').
  """
  config = ml_collections.ConfigDict()
  config.lam = 0.1
  config.steps = 500
  config.lr = 0.01
  config.schedule = "constant"
  config.piecewise_boundaries = (200, 300)
  config.piecewise_scales = (0.1, 0.5)
  config.optimizer = "adam"
  config.b1 = 0.9
  config.b2 = 0.999
  config.init = "zeros"
  config.init_scale = 1.0
  config.restarts = 1
  config.patience = 0
  config.min_delta = 0.0
  config.select = "best"
  config.chunk_size = 0
  config.feature_layer = "penultimate"
  return config


class SearchResult(NamedTuple):
  """Per-sample results of `search` (N = number of samples).

  Attributes:
    z: (N, nz) the returned latent code (best restart).
    x_hat: (N, *shape) G(z).
    score: (N,) the loss at z: (1 - lam) * score_residual + lam * score_feature.
    score_residual: (N,) sum |x - G(z)|.
    score_feature: (N,) sum |f(x) - f(G(z))| (zeros when lam == 0).
    residual_map: |x - G(z)| averaged over channels: (N, H, W) for images
      (N, H, W, C), (N, F) for vectors (N, F).
    loss_trajectory: (N, steps) loss of the kept restart before each step
      (a frozen sample repeats its last loss).
    steps_used: (N,) int32 steps the kept restart was active for (< steps
      when early stopping froze it).
    restart_scores: (N, restarts) the loss of each restart's returned z.
  """
  z: Array
  x_hat: Array
  score: Array
  score_residual: Array
  score_feature: Array
  residual_map: Array
  loss_trajectory: Array
  steps_used: Array
  restart_scores: Array


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the first invalid field of a `search` config."""
  checks = (
      (config.init in INITS, f"init must be one of {INITS}; got {config.init!r}."),
      (config.schedule in SCHEDULES,
       f"schedule must be one of {SCHEDULES}; got {config.schedule!r}."),
      (config.optimizer in OPTIMIZERS,
       f"optimizer must be one of {OPTIMIZERS}; got {config.optimizer!r}."),
      (config.select in SELECTS, f"select must be one of {SELECTS}; got {config.select!r}."),
      (0.0 <= config.lam <= 1.0, f"lam must lie in [0, 1]; got {config.lam}."),
      (config.steps >= 1, f"steps must be >= 1; got {config.steps}."),
      (config.restarts >= 1, f"restarts must be >= 1; got {config.restarts}."),
      (config.chunk_size >= 0, f"chunk_size must be >= 0 (0 = auto); got {config.chunk_size}."),
      (config.patience >= 0, f"patience must be >= 0 (0 = off); got {config.patience}."),
      (config.min_delta >= 0.0, f"min_delta must be >= 0; got {config.min_delta}."),
      (len(config.piecewise_boundaries) == len(config.piecewise_scales),
       "piecewise_boundaries and piecewise_scales must have the same length; got "
       f"{config.piecewise_boundaries} and {config.piecewise_scales}."),
  )
  for ok, message in checks:
    if not ok:
      raise ValueError(f"Invalid latent search config: {message}")


def learning_rate_schedule(config: ml_collections.ConfigDict) -> optax.Schedule:
  """The search's learning rate as a function of the (per-sample) step count."""
  if config.schedule == "constant":
    return optax.constant_schedule(config.lr)
  return optax.piecewise_constant_schedule(
      config.lr, dict(zip((int(b) for b in config.piecewise_boundaries),
                          (float(s) for s in config.piecewise_scales))))


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """The per-sample optimiser (elementwise: no clipping or norms that couple samples)."""
  schedule = learning_rate_schedule(config)
  if config.optimizer == "adam":
    return optax.adam(schedule, b1=config.b1, b2=config.b2)
  return optax.sgd(schedule)


def _fmix32(h: Array) -> Array:
  """MurmurHash3's 32-bit finaliser (uint32 arithmetic wraps)."""
  h = h ^ (h >> 16)
  h = h * jnp.uint32(0x85EBCA6B)
  h = h ^ (h >> 13)
  h = h * jnp.uint32(0xC2B2AE35)
  return h ^ (h >> 16)


def content_hash(x: Array) -> Array:
  """A uint32 hash of each sample's bytes: (N, ...) -> (N,).

  Each element's bits are mixed with its position and the results summed
  (mod 2**32): integer sums are exact in any order, so the hash of a sample is
  the same whatever batch it is in and however XLA splits the reduction.
  """
  flat = x.reshape(x.shape[0], -1).astype(jnp.float32)
  bits = jax.lax.bitcast_convert_type(flat, jnp.uint32)
  position = _fmix32(jnp.arange(flat.shape[1], dtype=jnp.uint32) * jnp.uint32(0x9E3779B9)
                     + jnp.uint32(1))
  return _fmix32(jnp.sum(_fmix32(bits ^ position), axis=1, dtype=jnp.uint32))


def sample_keys(key: Array, x: Array) -> Array:
  """One key per sample from its content (not its index): (N,) keys."""
  return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, content_hash(x))


def initial_z(keys: Array, x: Array, latent_dim: int, config: ml_collections.ConfigDict,
              z_init_fn: InitFn | None = None) -> Array:
  """Starting points (N, restarts, latent_dim) for samples x with per-sample `keys`."""
  n, restarts = x.shape[0], config.restarts
  shape = (restarts, latent_dim)
  restart_keys = jax.vmap(jax.random.split, in_axes=(0, None))(keys, restarts)
  draw = jax.vmap(jax.vmap(lambda k: jax.random.normal(k, (latent_dim,))))
  if config.init == "normal":
    return config.init_scale * draw(restart_keys)
  if config.init == "truncated_normal":
    draw_trunc = jax.vmap(jax.vmap(
        lambda k: jax.random.truncated_normal(k, -2.0, 2.0, (latent_dim,))))
    return config.init_scale * draw_trunc(restart_keys)
  if config.init == "zeros":
    centre = jnp.zeros((n, 1, latent_dim), jnp.float32)
  else:  # encoder
    if z_init_fn is None:
      raise ValueError("init='encoder' needs a z_init_fn (an encoder x -> z).")
    centre = z_init_fn(x).astype(jnp.float32).reshape(n, 1, latent_dim)
  noise = config.init_scale * draw(restart_keys)
  noise = noise.at[:, 0].set(0.0)  # Restart 0 starts exactly at the centre.
  return jnp.broadcast_to(centre, (n,) + shape) + noise


def _loss_terms(generate_fn, feature_fn, lam: float, x, fx, z):
  """Per-row loss terms for flat z (M, nz) against x (M, ...) and f(x) (M, ...)."""
  x_hat = generate_fn(z)
  residual = jnp.abs(x - x_hat)
  rec = residual.reshape(residual.shape[0], -1).sum(axis=1)
  if lam > 0.0:
    feat_diff = jnp.abs(fx - feature_fn(x_hat))
    feat = feat_diff.reshape(feat_diff.shape[0], -1).sum(axis=1)
  else:
    feat = jnp.zeros_like(rec)
  return (1.0 - lam) * rec + lam * feat, rec, feat, x_hat, residual


def _mask(active, new, old):
  """Per-row select on every leaf of two pytrees with rows on axis 0."""
  def pick(n, o):
    return jnp.where(active.reshape(active.shape + (1,) * (n.ndim - 1)), n, o)
  return jax.tree_util.tree_map(pick, new, old)


def search_chunk(generate_fn: GenerateFn, feature_fn: FeatureFn | None, x: Array,
                 z0: Array, valid: Array, config: ml_collections.ConfigDict) -> SearchResult:
  """Searches one chunk: x (B, ...), z0 (B, R, nz) starting points, valid (B,) rows.

  Rows with `valid` False are never updated and never hold up the early stop.
  Pure and traceable; `search` pads, chunks and calls it under `lax.map`.
  """
  lam = float(config.lam)
  steps, patience, min_delta = int(config.steps), int(config.patience), float(config.min_delta)
  keep_best = config.select == "best"
  b, restarts, nz = z0.shape
  m = b * restarts
  x = x.astype(jnp.float32)
  fx = feature_fn(x) if lam > 0.0 else jnp.zeros((b, 1), jnp.float32)  # Once, not per step.
  # Flatten restarts into rows: row r * b + i is restart r of sample i.
  x_rows = jnp.tile(x, (restarts,) + (1,) * (x.ndim - 1))
  fx_rows = jnp.tile(fx, (restarts,) + (1,) * (fx.ndim - 1))
  z = jnp.swapaxes(z0, 0, 1).reshape(m, nz).astype(jnp.float32)

  def total_loss(z_rows):
    loss, rec, feat, x_hat, _ = _loss_terms(generate_fn, feature_fn, lam, x_rows, fx_rows, z_rows)
    # Rows are independent, so d(sum)/dz_i = d(loss_i)/dz_i: per-sample gradients.
    return loss.sum(), (loss, rec, feat, x_hat)

  tx = make_optimizer(config)
  inf = jnp.full((m,), jnp.inf, jnp.float32)
  carry = {"z": z, "opt_state": jax.vmap(tx.init)(z),  # Own optimiser state per row.
           "active": jnp.tile(valid, restarts),
           # The returned iterate ('best': lowest loss; 'final': last evaluated)
           # with what its evaluation produced, so no pass is needed at the end.
           "out": {"loss": inf, "z": z, "rec": inf, "feat": inf,
                   "x_hat": jnp.zeros_like(x_rows)},
           "ref_loss": inf, "wait": jnp.zeros((m,), jnp.int32),  # Early-stop reference.
           "last_loss": inf, "steps_used": jnp.zeros((m,), jnp.int32)}

  def do_step(c):
    (_, (loss, rec, feat, x_hat)), grads = jax.value_and_grad(total_loss, has_aux=True)(c["z"])
    act = c["active"]
    take = act & (loss < c["out"]["loss"]) if keep_best else act
    improved = loss < c["ref_loss"] - min_delta
    wait = jnp.where(improved, 0, c["wait"] + 1)
    keep_going = act & (wait < patience) if patience > 0 else act
    updates, new_opt = jax.vmap(tx.update)(grads, c["opt_state"])
    evaluated = {"loss": loss, "z": c["z"], "rec": rec, "feat": feat, "x_hat": x_hat}
    new = {
        "z": jnp.where(keep_going[:, None], optax.apply_updates(c["z"], updates), c["z"]),
        "opt_state": _mask(keep_going, new_opt, c["opt_state"]),
        "active": keep_going,
        "out": _mask(take, evaluated, c["out"]),
        "ref_loss": jnp.where(act & improved, loss, c["ref_loss"]),
        "wait": jnp.where(act, wait, c["wait"]),
        "last_loss": jnp.where(act, loss, c["last_loss"]),
        "steps_used": c["steps_used"] + act.astype(jnp.int32),
    }
    return new, new["last_loss"]

  if patience > 0:
    def body(c, _):
      # Once every row of the chunk is frozen, the remaining steps cost nothing.
      return jax.lax.cond(jnp.any(c["active"]), do_step, lambda c: (c, c["last_loss"]), c)
  else:
    def body(c, _):
      return do_step(c)

  carry, trajectory = jax.lax.scan(body, carry, None, length=steps)
  out = carry["out"]

  # Keep the best restart of each sample.
  per_restart = out["loss"].reshape(restarts, b).T  # (b, R)
  pick = jnp.argmin(per_restart, axis=1)
  rows = pick * b + jnp.arange(b)
  x_hat = out["x_hat"][rows]
  residual = jnp.abs(x - x_hat)
  residual_map = residual.mean(axis=-1) if x.ndim == 4 else residual
  return SearchResult(z=out["z"][rows], x_hat=x_hat, score=out["loss"][rows],
                      score_residual=out["rec"][rows], score_feature=out["feat"][rows],
                      residual_map=residual_map, loss_trajectory=trajectory.T[rows],
                      steps_used=carry["steps_used"][rows], restart_scores=per_restart)


def resolved_chunk_size(config: ml_collections.ConfigDict, x: Array) -> int:
  """Samples per chunk for inputs x (N, ...): `config.chunk_size`, or the auto choice, <= N."""
  return min(int(config.chunk_size) or (128 if x.ndim == 4 else 8192), x.shape[0])


def search(generate_fn: GenerateFn, feature_fn: FeatureFn | None, x: Array, key: Array,
           config: ml_collections.ConfigDict, latent_dim: int,
           z_init_fn: InitFn | None = None) -> SearchResult:
  """AnoGAN latent search for every sample of x, in chunks of `config.chunk_size`.

  Pure and traceable (jit it, or call it inside a jitted score function).

  Args:
    generate_fn: eval-mode generator z (M, latent_dim) -> x_hat (M, *x.shape[1:]).
    feature_fn: eval-mode feature extractor x (M, ...) -> (M, ...); unused
      (may be None) when `config.lam` == 0.
    x: (N, ...) query samples (images (N, H, W, C) or vectors (N, F)).
    key: PRNG key for random starting points; each sample uses
      `fold_in(key, content_hash(x_i))`, so results do not depend on order.
    config: a `default_config()` section.
    latent_dim: size of z.
    z_init_fn: x (M, ...) -> z (M, latent_dim) warm start, for init='encoder'.

  Returns:
    A SearchResult with N rows.
  """
  validate(config)
  if config.lam > 0.0 and feature_fn is None:
    raise ValueError("lam > 0 needs a feature_fn (set lam=0 for a residual-only search).")
  if config.init == "encoder" and z_init_fn is None:
    raise ValueError("init='encoder' needs a z_init_fn (an encoder x -> z).")
  n = x.shape[0]
  chunk = resolved_chunk_size(config, x)
  num_chunks = -(-n // chunk)
  pad = num_chunks * chunk - n
  x = x.astype(jnp.float32)
  z0 = initial_z(sample_keys(key, x), x, latent_dim, config, z_init_fn)
  valid = jnp.arange(num_chunks * chunk) < n
  if pad:
    x = jnp.concatenate([x, jnp.zeros((pad,) + x.shape[1:], x.dtype)])
    z0 = jnp.concatenate([z0, jnp.zeros((pad,) + z0.shape[1:], z0.dtype)])

  def to_chunks(a):
    return a.reshape((num_chunks, chunk) + a.shape[1:])

  def run(args):
    return search_chunk(generate_fn, feature_fn, *args, config)

  if num_chunks == 1:
    out = run((x, z0, valid))
  else:
    out = jax.lax.map(run, (to_chunks(x), to_chunks(z0), to_chunks(valid)))
    out = jax.tree_util.tree_map(lambda a: a.reshape((num_chunks * chunk,) + a.shape[2:]), out)
  return jax.tree_util.tree_map(lambda a: a[:n], out)


def anomaly_loss(generate_fn: GenerateFn, feature_fn: FeatureFn | None, x: Array, z: Array,
                 lam: float) -> Array:
  """The per-sample AnoGAN loss of codes z (N, nz) for samples x (N, ...): (N,)."""
  x = x.astype(jnp.float32)
  fx = feature_fn(x) if lam > 0.0 else None
  return _loss_terms(generate_fn, feature_fn, lam, x, fx, z)[0]


def flops_per_sample_step(generate_fn: GenerateFn, feature_fn: FeatureFn | None,
                          x: Array, latent_dim: int, lam: float) -> float:
  """XLA's FLOP count of one search step (loss and gradient) divided by the batch size.

  Counts one forward and backward through G (and f) for the batch x, the
  quantity repeated at every step of the scan.
  """
  x = jnp.asarray(x, jnp.float32)
  fx = feature_fn(x) if lam > 0.0 else jnp.zeros((x.shape[0], 1))

  def step(z):
    return jax.grad(lambda z: _loss_terms(generate_fn, feature_fn, lam, x, fx, z)[0].sum())(z)

  z = jnp.zeros((x.shape[0], latent_dim), jnp.float32)
  cost = jax.jit(step).lower(z).compile().cost_analysis()
  if isinstance(cost, (list, tuple)):  # Older jax returned one dict per device.
    cost = cost[0]
  return float(cost["flops"]) / x.shape[0]


# Convolution gradients inside the search loop.
#
# Inside a while loop (the scan over steps), XLA:CPU gives the input-gradient
# convolution of every conv layer a kernel in "01oi" layout (the flipped kernel
# with input and output features swapped, left untransposed), which its conv
# runtime handles 2-3x slower than the canonical HWIO layout it gets in
# straight-line code. `apply_fast` applies a flax module with every nn.Conv /
# nn.ConvTranspose replaced by the same convolution whose gradient uses a
# flipped, transposed kernel computed once, outside the loop
# (`backward_kernels`). Convolutions over a dilated input (a transposed conv, and
# the input gradient of a strided conv) run as s*s phase convolutions on the
# undilated input (`_dilated_conv_by_phases`), skipping the inserted zeros.
# Values and gradients are those of the module up to float32 summation order.

_DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")


def _dilated(size: int, dilation: int) -> int:
  return 0 if size == 0 else 1 + dilation * (size - 1)


def _input_grad_padding(in_size, kernel, stride, out_size, pad, lhs_dilation):
  """Padding of the input-gradient convolution (as in jax's conv transpose rule)."""
  before = kernel - pad[0] - 1
  after = _dilated(in_size, lhs_dilation) + kernel - 1 - _dilated(out_size, stride) - before
  return before, after


# Below this many output features a transposed conv stays one lhs-dilated conv:
# s*s small convolutions cost more than the zeros they skip.
_MIN_PHASE_FEATURES = 16


def _dilated_conv_by_phases(x, kernel, padding, dilation: int):
  """`conv_general_dilated(x, kernel, 1, padding, lhs_dilation=dilation)` without the zeros.

  A conv over an input dilated by s is s*s stride-1 convolutions of the
  undilated input, one per output phase, interleaved: the s*s-fold fewer
  multiply-adds XLA:CPU would otherwise spend on inserted zeros. Returns None
  when the output size is not a multiple of s (the caller falls back).
  """
  s = dilation
  sizes, ksizes = x.shape[1:3], kernel.shape[:2]
  out = [(sizes[d] - 1) * s + 1 + padding[d][0] + padding[d][1] - ksizes[d] + 1
         for d in range(2)]
  if out[0] % s or out[1] % s:
    return None
  per_phase = [o // s for o in out]
  rows = []
  for r1 in range(s):
    cols = []
    for r2 in range(s):
      taps, pads = [], []
      for d, r in enumerate((r1, r2)):
        first = (padding[d][0] - r) % s  # First kernel tap that meets a real input.
        count = len(range(first, ksizes[d], s))
        offset = (r + first - padding[d][0]) // s  # Input index of output 0's first tap.
        taps.append(slice(first, None, s))
        pads.append((-offset, per_phase[d] + count - 2 + offset - (sizes[d] - 1)))
      phase_kernel = kernel[taps[0], taps[1]]
      if phase_kernel.shape[0] == 0 or phase_kernel.shape[1] == 0:
        cols.append(jnp.zeros((x.shape[0], *per_phase, kernel.shape[3]), x.dtype))
      else:
        cols.append(jax.lax.conv_general_dilated(x, phase_kernel, (1, 1), tuple(pads),
                                                 dimension_numbers=_DIMENSION_NUMBERS))
    rows.append(jnp.stack(cols, axis=3))  # (N, M0, M1, s, F)
  y = jnp.stack(rows, axis=2)  # (N, M0, s, M1, s, F)
  return y.reshape(x.shape[0], out[0], out[1], kernel.shape[3])


def _conv(x, kernel, strides, padding, lhs_dilation):
  if (lhs_dilation != (1, 1) and lhs_dilation[0] == lhs_dilation[1] and strides == (1, 1)
      and kernel.shape[3] >= _MIN_PHASE_FEATURES):
    y = _dilated_conv_by_phases(x, kernel, padding, lhs_dilation[0])
    if y is not None:
      return y
  return jax.lax.conv_general_dilated(x, kernel, strides, padding, lhs_dilation=lhs_dilation,
                                      dimension_numbers=_DIMENSION_NUMBERS)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def conv_with_backward_kernel(x, kernel, backward_kernel, strides, padding, lhs_dilation):
  """NHWC / HWIO convolution whose input gradient convolves with `backward_kernel`.

  Args:
    x: (N, H, W, C) input.
    kernel: (kh, kw, C, F) kernel.
    backward_kernel: `flip_kernel(kernel)`, computed outside any loop.
    strides: window strides (2 ints).
    padding: ((lo, hi), (lo, hi)) explicit padding.
    lhs_dilation: input dilation (2 ints; the stride of a transposed conv).

  Returns:
    The convolution, exactly as `lax.conv_general_dilated`.
  """
  del backward_kernel
  return _conv(x, kernel, strides, padding, lhs_dilation)


def _conv_fwd(x, kernel, backward_kernel, strides, padding, lhs_dilation):
  return _conv(x, kernel, strides, padding, lhs_dilation), (x, kernel, backward_kernel)


def _conv_bwd(strides, padding, lhs_dilation, residuals, g):
  x, kernel, backward_kernel = residuals
  pads = tuple(_input_grad_padding(x.shape[1 + i], kernel.shape[i], strides[i], g.shape[1 + i],
                                   padding[i], lhs_dilation[i]) for i in range(2))
  dx = _conv(g, backward_kernel.astype(g.dtype), lhs_dilation, pads, strides)
  # The kernel gradient is exact too (XLA drops it when, as in the search, it is unused).
  _, kernel_vjp = jax.vjp(lambda k: jax.lax.conv_general_dilated(
      x, k, strides, padding, lhs_dilation=lhs_dilation,
      dimension_numbers=_DIMENSION_NUMBERS), kernel)
  return dx.astype(x.dtype), kernel_vjp(g)[0], jnp.zeros_like(backward_kernel)


conv_with_backward_kernel.defvjp(_conv_fwd, _conv_bwd)


def flip_kernel(kernel: Array) -> Array:
  """HWIO kernel -> the kernel of its input-gradient convolution (flipped, I <-> O)."""
  return jnp.transpose(jnp.flip(kernel, (0, 1)), (0, 1, 3, 2))


def backward_kernels(params) -> dict[tuple[str, ...], Array]:
  """`flip_kernel` of every 4-D 'kernel' in a flax params tree, keyed by module path."""
  kernels = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    names = tuple(getattr(k, "key", str(k)) for k in path)
    if names and names[-1] == "kernel" and jnp.ndim(leaf) == 4:
      kernels[names[:-1]] = flip_kernel(leaf)
  return kernels


def _canonical_pairs(padding):
  return tuple((int(lo), int(hi)) for lo, hi in padding)


def _fast_conv_call(module, x, backward_kernel):
  """The module's output via `conv_with_backward_kernel`, or None if unsupported."""
  is_transpose = isinstance(module, nn.ConvTranspose)
  if x.ndim != 4 or getattr(module, "mask", None) is not None:
    return None
  if not module.has_variable("params", "kernel"):
    return None
  kernel_size = module.kernel_size
  if isinstance(kernel_size, int) or len(kernel_size) != 2:
    return None

  def pair(value):
    value = 1 if value is None else value
    return (value, value) if isinstance(value, int) else tuple(value)

  strides = pair(module.strides)
  if pair(module.kernel_dilation) != (1, 1) or module.precision is not None:
    return None
  padding = flax_linear.canonicalize_padding(module.padding, 2)
  kernel = module.get_variable("params", "kernel")
  if is_transpose:
    if module.transpose_kernel or module.preferred_element_type is not None:
      return None
    if isinstance(padding, str):
      if padding not in ("SAME", "VALID"):
        return None
      pads = []
      for k, s in zip(kernel.shape[:2], strides):
        pad_len = k + s - 2 + (max(k - s, 0) if padding == "VALID" else 0)
        pad_a = k - 1 if (padding == "VALID" or s > k - 1) else int(np.ceil(pad_len / 2))
        pads.append((pad_a, pad_len - pad_a))
      pads = tuple(pads)
    else:
      pads = _canonical_pairs(padding)
    window_strides, lhs_dilation = (1, 1), strides
  else:
    if (module.feature_group_count != 1 or not module.shared_weights
        or pair(module.input_dilation) != (1, 1) or module.conv_general_dilated is not None
        or module.conv_general_dilated_cls is not None):
      return None
    if isinstance(padding, str):
      if padding not in ("SAME", "SAME_LOWER", "VALID"):
        return None
      pads = _canonical_pairs(jax.lax.padtype_to_pads(x.shape[1:3], kernel.shape[:2], strides,
                                                      padding))
    else:
      pads = _canonical_pairs(padding)
    window_strides, lhs_dilation = strides, (1, 1)
  bias = module.get_variable("params", "bias") if module.use_bias else None
  x, kernel, bias = module.promote_dtype(x, kernel, bias, dtype=module.dtype)
  y = conv_with_backward_kernel(x, kernel, backward_kernel.astype(kernel.dtype),
                                window_strides, pads, lhs_dilation)
  if bias is not None:
    y = y + bias.reshape((1, 1, 1, -1))
  return y


def apply_fast(module: nn.Module, variables, kernels: dict[tuple[str, ...], Array],
               *args, **kwargs) -> Any:
  """`module.apply(variables, *args, **kwargs)` with loop-friendly conv gradients.

  Every nn.Conv / nn.ConvTranspose whose path is in `kernels` (from
  `backward_kernels(variables['params'])`, computed OUTSIDE the search loop)
  runs through `conv_with_backward_kernel`; other layers and unsupported
  configurations (masks, groups, dilations, circular padding) run unchanged.
  """
  def interceptor(next_fun, call_args, call_kwargs, context):
    module_ = context.module
    if (context.method_name == "__call__" and isinstance(module_, (nn.Conv, nn.ConvTranspose))
        and len(call_args) == 1 and not call_kwargs):
      backward_kernel = kernels.get(tuple(module_.path))
      if backward_kernel is not None:
        y = _fast_conv_call(module_, call_args[0], backward_kernel)
        if y is not None:
          return y
    return next_fun(*call_args, **call_kwargs)

  with nn.intercept_methods(interceptor):
    return module.apply(variables, *args, **kwargs)
