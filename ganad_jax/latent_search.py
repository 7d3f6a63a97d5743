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

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import optax

from ganad_jax import profiling
from ganad_jax.configs.methods import anogan as search_settings
from ganad_jax import sharding

Array = jax.Array
GenerateFn = Callable[[Array], Array]  # z (N, nz) -> x_hat (N, *shape)
FeatureFn = Callable[[Array], Array]  # x (N, *shape) -> features (N, ...)
InitFn = Callable[[Array], Array]  # x (N, *shape) -> z (N, nz), e.g. an encoder

# The values of the search's choice fields (the section is registered with AnoGAN's config).
INITS, SCHEDULES = search_settings.INITS, search_settings.SCHEDULES
OPTIMIZERS, SELECTS = search_settings.OPTIMIZERS, search_settings.SELECTS


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


def validate(config: ml_collections.ConfigDict, prefix: str = "search") -> None:
  """Raises ValueError naming the first invalid field of a `search` config.

  The field is named `prefix.field` (e.g. "anogan.search.init") with its value
  (`configs.methods.anogan.check_search`, which `configs.validate` runs for
  the methods that read `anogan.search`).
  """
  search_settings.check_search(config, prefix)


def learning_rate_schedule(config: ml_collections.ConfigDict, lr=None) -> optax.Schedule:
  """The search's learning rate as a function of the (per-sample) step count.

  `lr` (a float or a traced scalar, e.g. a vmapped hyperparameter) replaces
  `config.lr` when given.
  """
  lr = config.lr if lr is None else lr
  if config.schedule == "constant":
    return optax.constant_schedule(lr)
  return optax.piecewise_constant_schedule(
      lr, dict(zip((int(b) for b in config.piecewise_boundaries),
                   (float(s) for s in config.piecewise_scales))))


def make_optimizer(config: ml_collections.ConfigDict, lr=None) -> optax.GradientTransformation:
  """The per-sample optimiser (elementwise: no clipping or norms that couple samples).

  `lr` overrides `config.lr` (see `learning_rate_schedule`).
  """
  schedule = learning_rate_schedule(config, lr)
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


def _loss_terms(generate_fn, feature_fn, lam, x, fx, z, use_features: bool | None = None):
  """Per-row loss terms for flat z (M, nz) against x (M, ...) and f(x) (M, ...).

  `lam` may be traced; `use_features` (default: lam > 0) says whether the
  feature term is computed at all. Losses are float32 whatever the nets'
  computation dtype.
  """
  use_features = lam > 0.0 if use_features is None else use_features
  x_hat = generate_fn(z)
  residual = jnp.abs(x - x_hat.astype(jnp.float32))
  rec = residual.reshape(residual.shape[0], -1).sum(axis=1)
  if use_features:
    feat_diff = jnp.abs(fx.astype(jnp.float32) - feature_fn(x_hat).astype(jnp.float32))
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
                 z0: Array, valid: Array, config: ml_collections.ConfigDict,
                 hparams: dict | None = None) -> SearchResult:
  """Searches one chunk: x (B, ...), z0 (B, R, nz) starting points, valid (B,) rows.

  Rows with `valid` False are never updated and never hold up the early stop.
  Pure and traceable; `search` pads, chunks and calls it under `lax.map`.
  `hparams` ({"lam", "lr"}, possibly traced) override the config's values.
  """
  hparams = hparams or {}
  use_features = config.lam > 0.0  # Static: whether the feature term exists.
  lam = hparams.get("lam", float(config.lam))
  steps, patience, min_delta = int(config.steps), int(config.patience), float(config.min_delta)
  keep_best = config.select == "best"
  b, restarts, nz = z0.shape
  m = b * restarts
  x = x.astype(jnp.float32)
  fx = feature_fn(x) if use_features else jnp.zeros((b, 1), jnp.float32)  # Once, not per step.
  # Flatten restarts into rows: row r * b + i is restart r of sample i.
  x_rows = jnp.tile(x, (restarts,) + (1,) * (x.ndim - 1))
  fx_rows = jnp.tile(fx, (restarts,) + (1,) * (fx.ndim - 1))
  z = jnp.swapaxes(z0, 0, 1).reshape(m, nz).astype(jnp.float32)
  x_rows, z = _rows(x_rows), _rows(z)  # Samples split over the mesh's "data" axis, if any.

  def total_loss(z_rows):
    loss, rec, feat, x_hat, _ = _loss_terms(generate_fn, feature_fn, lam, x_rows, fx_rows, z_rows,
                                            use_features)
    # Rows are independent, so d(sum)/dz_i = d(loss_i)/dz_i: per-sample gradients.
    return loss.sum(), (loss, rec, feat, x_hat)

  tx = make_optimizer(config, hparams.get("lr"))
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
    evaluated = {"loss": loss, "z": c["z"], "rec": rec, "feat": feat,
                 "x_hat": x_hat.astype(jnp.float32)}
    new = {
        "z": _rows(jnp.where(keep_going[:, None], optax.apply_updates(c["z"], updates), c["z"])),
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


def _rows(a: Array) -> Array:
  return sharding.constrain(a, sharding.P("data"))


def resolved_chunk_size(config: ml_collections.ConfigDict, x: Array) -> int:
  """Samples per chunk for inputs x (N, ...): `config.chunk_size`, or the auto choice, <= N.

  Under a mesh context it is rounded up to a multiple of the "data" axis, whose
  devices each search their share of every chunk.
  """
  # Images: 64 ran fastest on the 2-core CPU (1038 sample-steps/s for the
  # 32x32 DCGAN vs 989 at 128 and 674 at 1024: activations stay in cache).
  image_chunk = 64 if jax.default_backend() == "cpu" else 1024
  chunk = min(int(config.chunk_size) or (image_chunk if x.ndim == 4 else 8192), x.shape[0])
  devices = sharding.axis_size("data")
  return -(-chunk // devices) * devices


def search(generate_fn: GenerateFn, feature_fn: FeatureFn | None, x: Array, key: Array,
           config: ml_collections.ConfigDict, latent_dim: int,
           z_init_fn: InitFn | None = None, hparams: dict | None = None) -> SearchResult:
  """AnoGAN latent search for every sample of x, in chunks of `config.chunk_size`.

  Pure and traceable (jit it, or call it inside a jitted score function).

  Args:
    generate_fn: eval-mode generator z (M, latent_dim) -> x_hat (M, *x.shape[1:]).
    feature_fn: eval-mode feature extractor x (M, ...) -> (M, ...); unused
      (may be None) when `config.lam` == 0.
    x: (N, ...) query samples (images (N, H, W, C) or vectors (N, F)).
    key: PRNG key for random starting points; each sample uses
      `fold_in(key, content_hash(x_i))`, so results do not depend on order.
    config: an `anogan.search` section (`configs.methods.anogan.search_config`).
    latent_dim: size of z.
    z_init_fn: x (M, ...) -> z (M, latent_dim) warm start, for init='encoder'.
    hparams: optional {"lam": ..., "lr": ...} scalars (Python or traced, e.g.
      a method's `state["hparams"]` under a vmapped grid) that replace
      `config.lam` / `config.lr`. Whether the feature term is computed at all
      stays decided by `config.lam > 0`.

  Returns:
    A SearchResult with N rows. Under a mesh context (`jax.set_mesh`) with a
    "data" axis, the samples of every chunk are split over that axis.
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
    return search_chunk(generate_fn, feature_fn, *args, config, hparams)

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
  return profiling.compiled_flops(step, z) / x.shape[0]
