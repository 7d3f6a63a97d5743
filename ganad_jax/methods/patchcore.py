"""PatchCore: a coreset memory bank of locally aware patch features, scored by nearest neighbours.

Roth, Pemula, Zepeda, Schoelkopf, Brox, Gehler, "Towards Total Recall in
Industrial Anomaly Detection", CVPR 2022; reference code
amazon-science/patchcore-inspection (below "the reference") and anomalib's
`PatchcoreModel`. Followed:
- Locally aware patch features: two stages of an ImageNet backbone
  (`config.pretrained`, see `methods/backbone.py`): the paper's WRN-50
  layer2 + layer3 (strides 8 and 16); for an EfficientNet the last stride-8
  and stride-16 stages, stage3 + stage5. Each stage is 3x3 average pooled
  (stride 1, zero padding 1, divided by 9: anomalib's AvgPool2d(3, 1, 1); the
  reference's unfold + adaptive pooling of each 3x3 x C patch to 1024 values
  is the same when C = 1024), the coarser stage upsampled bilinearly
  (align_corners=False) to the finer grid, the two concatenated, then
  reduced by the reference's adaptive average pooling over channels to
  `dim` (1024) when the concatenation is wider. Differs: the reference
  also adaptive-pools each stage's 9C-vector to 1024 first (for C != 1024 a
  mix of neighbouring channels, or a repetition when 9C < 1024); here the
  3x3 mean is taken per channel.
- Greedy k-center coreset (`methods/coreset.py`) on a 128-dimensional
  Gaussian random projection, of int(coreset_ratio x patches) rows (the
  paper's 10 % or 1 %), starting at a random patch that is kept in the
  coreset (anomalib #3459).
- Exact nearest-neighbour search (Euclidean, as anomalib; the reference's
  faiss IndexFlatL2 returns squared distances) by chunked matmuls.
- Map: the distance of each location to its nearest bank row, bilinearly
  upsampled to the input size and smoothed by a Gaussian of `sigma` pixels
  (the reference's 4; dm-pix, edges mirrored as scipy's gaussian_filter).
- Image score: the paper's reweighting (eq. 7, as anomalib: the reference
  code scores the maximum alone): s* = the largest patch distance, m_test
  its patch, m* its nearest bank row, N_b the `num_neighbors` nearest bank
  rows of m* (m* first), s = (1 - exp|m_test - m*| / sum_{m in N_b}
  exp|m_test - m|) s*. `num_neighbors` 1 gives s*. The
  unweighted s* is reported too, as "score_max".

Memory: training yields T = images x h x w patches of D channels; `fit`
holds them (4 T D bytes) and their projection (4 T 128 bytes, if D > 128)
on the host, and the state keeps `bank_capacity` rows plus their neighbour
table. `fit` states this and refuses it over `max_memory_mb` before any
feature is extracted. The state's shapes are fixed at `init` (checkpoints
are restored into them), so the bank is `bank_capacity` rows of which the
first int(coreset_ratio T) are used (`fit` refuses a coreset larger than the
capacity, naming both).

State: "net" (the backbone's variables), "key" (the projection's and the
start point's), "bank" (capacity, D) float32, "rows" int32 (rows used),
"neighbors" (capacity, num_neighbors) int32 (each row's nearest rows, itself
first), "radius" float32 (the coreset's covering radius in the projection),
"fitted" (scores are NaN before `fit`).
"""

import dm_pix as pix
from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from ganad_jax import run_outputs
from ganad_jax.methods import backbone
from ganad_jax.methods import base
from ganad_jax.methods import coreset

PROJECTION_DIM = 128  # The reference's and anomalib's coreset projection (JL).


def default_layers(name: str) -> tuple[str, ...]:
  """The paper's stages: the last stride-8 and stride-16 stages of the backbone."""
  if name.startswith("efficientnet-"):
    return ("stage3", "stage5")
  return ("layer2", "layer3")


def adaptive_pool_matrix(width: int, target: int) -> np.ndarray:
  """(width, target) float32 A with x @ A = torch's adaptive_avg_pool1d(x, target)."""
  matrix = np.zeros((width, target), np.float32)
  for i in range(target):
    lo, hi = (i * width) // target, -(-((i + 1) * width) // target)
    matrix[lo:hi, i] = 1.0 / (hi - lo)
  return matrix


def fit_memory_bytes(images: int, grid: tuple[int, int], d: int, capacity: int,
                     num_neighbors: int) -> int:
  """Peak bytes of `fit`: the patch features, their projection and the state's bank."""
  patches = images * grid[0] * grid[1]
  projected = PROJECTION_DIM if d > PROJECTION_DIM else 0
  return 4 * patches * (d + projected) + 4 * capacity * (d + num_neighbors)


def smooth(maps: jax.Array, sigma: float) -> jax.Array:
  """(N, H, W) Gaussian blur as scipy.ndimage.gaussian_filter: 4 sigma each side, mirrored."""
  if sigma <= 0:
    return maps
  r = int(4 * sigma + 0.5)
  maps = jnp.pad(maps, ((0, 0), (r, r), (r, r)), mode="symmetric")[..., None]
  return pix.gaussian_blur(maps, sigma, 2 * r + 1, padding="VALID")[..., 0]


def reweighted_score(test_patch: jax.Array, support: jax.Array, s_star: jax.Array) -> jax.Array:
  """The paper's eq. 7: (1 - exp|m_test - m*| / sum_b exp|m_test - m_b|) s*.

  Args:
    test_patch: (N, D) m_test,*, the most anomalous patch of each image.
    support: (N, b, D) the b nearest bank rows of m*, m* first.
    s_star: (N,) the distance of m_test,* to m*.
  """
  dist = jnp.sqrt(jnp.maximum(jnp.sum(jnp.square(support - test_patch[:, None]), -1), 0.0))
  return (1.0 - jax.nn.softmax(dist, axis=-1)[:, 0]) * s_star


def make(config, input_shape: tuple[int, ...]) -> base.Method:
  """Builds PatchCore for images of shape `input_shape` = (H, W, C), C in {1, 3}.

  Raises:
    ValueError: inputs that are not images, an unknown backbone or stage, a
      bank whose capacity alone is over `patchcore.max_memory_mb`.
  """
  cfg = config.patchcore
  input_shape = tuple(input_shape)
  if len(input_shape) != 3 or input_shape[-1] not in (1, 3):
    raise ValueError(f"patchcore needs images (H, W, 1 or 3); got inputs of shape {input_shape}.")
  if config.pretrained.backbone not in backbone.NATIVE_SIZE:
    raise ValueError(f"pretrained.backbone={config.pretrained.backbone!r} is not one of "
                     f"{', '.join(backbone.NAMES)}.")
  layers = tuple(cfg.layers) or default_layers(config.pretrained.backbone)
  net = backbone.load(config.pretrained)
  unknown = [n for n in layers if n not in net.stages]
  if unknown:
    raise ValueError(f"patchcore.layers: {', '.join(map(repr, unknown))} not among the stages "
                     f"of {net.name}: {', '.join(net.stages)}.")
  grid = max((net.stages[n][:2] for n in layers), key=lambda hw: hw[0] * hw[1])
  total = sum(net.stages[n][2] for n in layers)
  d = min(total, int(cfg.dim))
  pool = None if d == total else jnp.asarray(adaptive_pool_matrix(total, d))
  capacity, b = int(cfg.bank_capacity), int(cfg.num_neighbors)
  need = fit_memory_bytes(0, grid, d, capacity, b)
  if need > cfg.max_memory_mb * 2**20:
    raise ValueError(f"patchcore: a bank of patchcore.bank_capacity={capacity} rows of {d} "
                     f"channels needs {need / 2**20:.0f} MB, over patchcore.max_memory_mb="
                     f"{cfg.max_memory_mb}; lower the capacity or raise the limit.")
  height, width = input_shape[:2]
  search = lambda q, bank, k, rows: coreset.nearest(q, bank, k, rows, int(cfg.chunk_mb) * 2**20)

  def embed(v, x):
    """(N, h, w, d) float32: the locally aware patch features."""
    stages = net.extract(v, x)
    parts = []
    for n in layers:
      s = stages[n]
      s = jax.lax.reduce_window(s, 0.0, jax.lax.add, (1, 3, 3, 1), (1, 1, 1, 1),
                                ((0, 0), (1, 1), (1, 1), (0, 0))) / 9.0
      parts.append(jax.image.resize(s, (x.shape[0], *grid, s.shape[-1]), "linear"))
    e = jnp.concatenate(parts, axis=-1)
    return e if pool is None else jnp.matmul(e, pool, precision=jax.lax.Precision.HIGHEST)

  def init(key, batch):
    del batch
    return {"step": jnp.zeros((), jnp.int32),
            "net": jax.tree_util.tree_map(jnp.asarray, net.variables),
            "key": (jax.random.key_data(key)
                    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key),
            "bank": jnp.zeros((capacity, d), jnp.float32),
            "rows": jnp.zeros((), jnp.int32),
            "neighbors": jnp.zeros((capacity, b), jnp.int32),
            "radius": jnp.zeros((), jnp.float32),
            "fitted": jnp.zeros((), jnp.float32)}

  def fit(state, train_x, val_x=None):
    del val_x  # Nothing is chosen on held-out data.
    if train_x.shape[1:] != input_shape:
      raise ValueError(f"fit: training inputs of shape {train_x.shape[1:]}, PatchCore was built "
                       f"for {input_shape}.")
    images, per_image = len(train_x), grid[0] * grid[1]
    patches = images * per_image
    k = int(patches * cfg.coreset_ratio)  # int(), as both references.
    need = fit_memory_bytes(images, grid, d, capacity, b)
    logging.info("patchcore fit: %d training images x %dx%d locations = %d patches of %d "
                 "channels (%.0f MB with their projection); coreset of %d rows (%.3g %%), "
                 "bank capacity %d.", images, *grid, patches, d, need / 2**20, k,
                 100 * cfg.coreset_ratio, capacity)
    if need > cfg.max_memory_mb * 2**20:
      raise ValueError(f"patchcore fit: {patches} patches ({images} images x {grid[0]}x{grid[1]}) "
                       f"of {d} channels need {need / 2**20:.0f} MB, over patchcore.max_memory_mb="
                       f"{cfg.max_memory_mb}; lower pretrained.input_size or patchcore.dim, use "
                       "fewer training images, or raise the limit.")
    if not b <= k <= capacity:
      raise ValueError(f"patchcore fit: patchcore.coreset_ratio={cfg.coreset_ratio:g} of {patches} "
                       f"patches is {k} rows; the bank needs between patchcore.num_neighbors={b} "
                       f"and patchcore.bank_capacity={capacity} rows: set the capacity to {k} or "
                       "change the ratio.")
    key_proj, key_start = jax.random.split(jax.random.wrap_key_data(state["key"]))
    proj = (jax.random.normal(key_proj, (d, PROJECTION_DIM), jnp.float32) / np.sqrt(PROJECTION_DIM)
            if d > PROJECTION_DIM else None)

    @jax.jit
    def extract(v, x):
      e = embed(v, x).reshape(-1, d)
      p = e if proj is None else jnp.matmul(e, proj, precision=jax.lax.Precision.HIGHEST)
      return e, p

    features = np.empty((patches, d), np.float32)
    projected = features if proj is None else np.empty((patches, PROJECTION_DIM), np.float32)
    progress = run_outputs.Progress(images, unit="image",
                                    label="patchcore fit: features of the training images")
    done = 0
    for batch, n in base.padded_batches(np.asarray(train_x, np.float32), config.eval.batch_size):
      e, p = extract(state["net"], batch)
      rows = slice(done * per_image, (done + n) * per_image)
      features[rows] = np.asarray(e)[:n * per_image]
      if proj is not None:
        projected[rows] = np.asarray(p)[:n * per_image]
      done += n
      progress.update(done)
    if not np.all(np.isfinite(features)):
      raise ValueError("fit: non-finite backbone features on the training data.")
    start = int(jax.random.randint(key_start, (), 0, patches))
    progress = run_outputs.Progress(k, unit="row", label="patchcore fit: greedy coreset")
    indices, radius = coreset.greedy_coreset(projected, k, start, segments=min(k - 1, 50),
                                             progress=progress.update)
    del projected
    bank = np.zeros((capacity, d), np.float32)
    bank[:k] = features[indices]
    del features
    bank = jnp.asarray(bank)
    _, neighbors = jax.jit(search, static_argnums=2)(bank, bank, b, jnp.int32(k))
    return dict(state, bank=bank, rows=jnp.int32(k), neighbors=neighbors,
                radius=jnp.float32(radius[-1]), fitted=jnp.ones((), jnp.float32))

  def score(state, batch, key):
    del key
    n = batch.shape[0]
    e = embed(state["net"], batch).reshape(n, grid[0] * grid[1], d)
    dist, index = search(e.reshape(-1, d), state["bank"], 1, state["rows"])
    dist, index = dist.reshape(n, -1), index.reshape(n, -1)
    maps = jax.image.resize(dist.reshape(n, *grid), (n, height, width), "linear")
    maps = jnp.where(state["fitted"] > 0, smooth(maps, cfg.sigma), jnp.nan)
    worst = jnp.argmax(dist, axis=1)
    s_star = jnp.take_along_axis(dist, worst[:, None], axis=1)[:, 0]
    if b == 1:
      image = s_star
    else:
      test_patch = jnp.take_along_axis(e, worst[:, None, None], axis=1)[:, 0]
      nn_row = jnp.take_along_axis(index, worst[:, None], axis=1)[:, 0]
      image = reweighted_score(test_patch, state["bank"][state["neighbors"][nn_row]], s_star)
    fitted = state["fitted"] > 0
    return {"score": jnp.where(fitted, image, jnp.nan), "map": maps,
            "score_max": jnp.where(fitted, s_star, jnp.nan)}

  return base.Method(init, None, score, fit)
