"""PaDiM: Gaussians over per-location pretrained features, giving anomaly maps.

Defard, Setkov, Loesch, Audigier, "PaDiM: a Patch Distribution Modeling
Framework for Anomaly Detection and Localization", ICPR 2020 workshops.
Followed: the embedding is the concatenation of the chosen stages of an
ImageNet backbone (`config.pretrained`, see `methods/backbone.py`), each
coarser stage repeated (nearest) up to the finest one's grid, reduced to a
random subset of `channels` dimensions (drawn once from the init key, kept in
the state); the covariance is the sample covariance plus `eps` * I (the
paper's 0.01; a fit whose covariance is then still not positive definite in
floats, a singular one plus a tiny eps, is refused naming padim.eps); the
map is the Mahalanobis distance at every location, bilinearly upsampled to
the input size and smoothed by a Gaussian of `sigma` pixels (the paper's 4;
dm-pix, edges mirrored as scipy's gaussian_filter does); the image score is
the map's maximum.

`gaussian` "per_position" (the paper: one Gaussian per location, for aligned
objects) or "shared" (one Gaussian over every location of every training
image, for textures and images that are not aligned, such as the magnetic
tiles).

Memory: at a backbone input of S pixels and a finest stage of stride r the
grid is (S / r)^2 locations; with d = `channels`, "per_position" keeps
(S / r)^2 d^2 float32 whitening matrices, and its fit holds at most two
float64 arrays of that size at once (the sums, turned into the covariance in
place, and the eigenvectors): 20 (S / r)^2 d^2 bytes at the peak; "shared"
needs 20 d^2 bytes. EfficientNet-Lite0 at 224 with d = 100: stages 2-4
(stride 4, 56 x 56) 598 MB, stages 3-5 (stride 8, 28 x 28) 150 MB,
shared 0.2 MB (MB = 2^20 bytes). A configuration over `max_memory_mb` is
refused by `make`, before any feature is extracted.

State: "net" (the backbone's variables), "channels" (d,) int32, "stats"
{"mean": (h, w, d) or (d,), "whitening": (h, w, d, d) or (d, d)} with
whitening @ whitening.T = the precision, and "fitted" (scores are NaN before
`fit`).
"""

import dm_pix as pix
import jax
import jax.numpy as jnp
import numpy as np

from ganad_jax import run_outputs
from ganad_jax.methods import backbone
from ganad_jax.methods import base

GAUSSIANS = ("per_position", "shared")


def _default_layers(name: str) -> tuple[str, ...]:
  if name.startswith("efficientnet-"):
    return ("stage2", "stage3", "stage4")
  return ("layer1", "layer2", "layer3")


def memory_bytes(grid: tuple[int, int], d: int, gaussian: str) -> int:
  """Peak bytes of `fit`'s statistics (see the module docstring)."""
  locations = grid[0] * grid[1] if gaussian == "per_position" else 1
  return 20 * locations * d * d


def _check_positive_definite(eigvals: np.ndarray, images: int, samples: int, d: int,
                             eps: float) -> None:
  """Raises ValueError unless the whitening 1 / sqrt(eigenvalue) is finite in float32.

  Args:
    eigvals: the eigenvalues of every regularised covariance, float64.
    images: training images; samples: the vectors each covariance is over.
    d: channels; eps: padim.eps.
  """
  smallest, floor = float(np.min(eigvals)), float(np.finfo(np.float32).tiny)
  if smallest > floor:  # False for NaN too.
    return
  why = (" (fewer than channels: the sample covariance is singular and padim.eps alone keeps "
         "it invertible)" if samples <= d else "")
  raise ValueError(
      f"padim fit: the covariance of {d} channels over {samples} samples from {images} training "
      f"images{why}, plus padim.eps={eps:g} * I, has smallest eigenvalue {smallest:.3g}; the "
      f"whitening needs it above {floor:.3g}. Raise padim.eps (the paper's is 0.01), lower "
      "padim.channels, or add training images.")


def make(config, input_shape: tuple[int, ...]) -> base.Method:
  """Builds PaDiM for images of shape `input_shape` = (H, W, C), C in {1, 3}.

  Raises:
    ValueError: inputs that are not images, unknown stages or `gaussian`, a
      channel count above the embedding's, or statistics over
      `padim.max_memory_mb` (the message gives the size and what shrinks it).
  """
  cfg = config.padim
  input_shape = tuple(input_shape)
  if len(input_shape) != 3 or input_shape[-1] not in (1, 3):
    raise ValueError(f"padim needs images (H, W, 1 or 3); got inputs of shape {input_shape}.")
  if cfg.gaussian not in GAUSSIANS:
    raise ValueError(f"padim.gaussian must be one of {GAUSSIANS}; got {cfg.gaussian!r}.")
  if config.pretrained.backbone not in backbone.NATIVE_SIZE:
    raise ValueError(f"pretrained.backbone={config.pretrained.backbone!r} is not one of "
                     f"{', '.join(backbone.NAMES)}.")
  layers = tuple(cfg.layers) or _default_layers(config.pretrained.backbone)
  net = backbone.load(config.pretrained)
  unknown = [n for n in layers if n not in net.stages]
  if unknown:
    raise ValueError(f"padim.layers: {', '.join(map(repr, unknown))} not among the stages of "
                     f"{net.name}: {', '.join(net.stages)}.")
  grid = max((net.stages[n][:2] for n in layers), key=lambda hw: hw[0] * hw[1])
  total = sum(net.stages[n][2] for n in layers)
  d = int(cfg.channels) or total
  if not 0 < d <= total:
    raise ValueError(f"padim.channels={cfg.channels}: the embedding of {', '.join(layers)} has "
                     f"{total} channels.")
  need = memory_bytes(grid, d, cfg.gaussian)
  if need > cfg.max_memory_mb * 2**20:
    raise ValueError(f"padim: {cfg.gaussian} Gaussians over a {grid[0]}x{grid[1]} grid of {d} "
                     f"channels need {need / 2**20:.0f} MB, over padim.max_memory_mb="
                     f"{cfg.max_memory_mb}; lower padim.channels or pretrained.input_size, use "
                     "padim.gaussian='shared', or raise the limit.")
  height, width = input_shape[:2]
  per_position = cfg.gaussian == "per_position"
  stats_shape = (*grid, d) if per_position else (d,)

  def embed(v, channels, x):
    """(N, h, w, d) float32: the chosen stages on the finest grid, channel subset."""
    stages = net.extract(v, x)
    parts = [jax.image.resize(stages[n], (x.shape[0], *grid, stages[n].shape[-1]), "nearest")
             for n in layers]
    return jnp.take(jnp.concatenate(parts, axis=-1), channels, axis=-1)

  def init(key, batch):
    del batch
    channels = jnp.sort(jax.random.permutation(key, total)[:d]).astype(jnp.int32)
    return {"step": jnp.zeros((), jnp.int32),
            "net": jax.tree_util.tree_map(jnp.asarray, net.variables),
            "channels": channels,
            "stats": {"mean": jnp.zeros(stats_shape, jnp.float32),
                      "whitening": jnp.broadcast_to(jnp.eye(d, dtype=jnp.float32),
                                                    stats_shape + (d,))},
            "fitted": jnp.zeros((), jnp.float32)}

  def fit(state, train_x, val_x=None):
    del val_x  # Nothing is chosen on held-out data.
    train_x = np.asarray(train_x, np.float32)
    if train_x.shape[1:] != input_shape:
      raise ValueError(f"fit: training inputs of shape {train_x.shape[1:]}, PaDiM was built "
                       f"for {input_shape}.")
    if len(train_x) < 2:
      raise ValueError(f"fit: a covariance needs >= 2 training images; got {len(train_x)}.")
    extract = jax.jit(embed)
    # float64 sums of x and x x^T (per location, or over all locations), batch by batch.
    count, total_x, total_xx = 0, np.zeros(stats_shape), np.zeros(stats_shape + (d,))
    images = 0
    progress = run_outputs.Progress(len(train_x), unit="image",
                                  label="padim fit: embeddings of the training images")
    for batch, n in base.padded_batches(train_x, config.eval.batch_size):
      e = np.asarray(extract(state["net"], state["channels"], batch))[:n].astype(np.float64)
      if not np.all(np.isfinite(e)):
        raise ValueError("fit: non-finite backbone features on the training data.")
      if per_position:  # (h*w, n, d) batched matmuls: x^T x per location.
        e = e.reshape(n, -1, d).transpose(1, 0, 2)
        count += n
        total_x += e.sum(axis=1).reshape(stats_shape)
        total_xx += np.matmul(e.transpose(0, 2, 1), e).reshape(stats_shape + (d,))
      else:
        e = e.reshape(-1, d)
        count += len(e)
        total_x += e.sum(axis=0)
        total_xx += e.T @ e
      images += n
      progress.update(images)
    mean = total_x / count
    cov = total_xx  # In place: the largest arrays exist at most twice (module docstring).
    for i in range(d):  # Row by row: no full-size temporary for count * mean mean^T.
      cov[..., i, :] -= count * mean[..., i, None] * mean
    cov /= count - 1
    cov[..., np.arange(d), np.arange(d)] += cfg.eps
    # Positive definite in exact arithmetic (eps * I on a PSD matrix), but a
    # singular sample covariance (fewer samples than channels) plus a tiny eps
    # is not in floats.
    eigvals, eigvecs = np.linalg.eigh(cov)
    del cov, total_xx
    _check_positive_definite(eigvals, len(train_x), count, d, cfg.eps)
    eigvecs /= np.sqrt(eigvals)[..., None, :]  # The whitening, in place.
    return dict(state, stats={"mean": jnp.asarray(mean, jnp.float32),
                              "whitening": jnp.asarray(eigvecs, jnp.float32)},
                fitted=jnp.ones((), jnp.float32))

  def score(state, batch, key):
    del key
    e = embed(state["net"], state["channels"], batch) - state["stats"]["mean"]
    subscripts = "nhwd,hwde->nhwe" if per_position else "nhwd,de->nhwe"
    white = jnp.einsum(subscripts, e, state["stats"]["whitening"],
                       precision=jax.lax.Precision.HIGHEST)
    dist = jnp.sqrt(jnp.sum(jnp.square(white), axis=-1))
    maps = jax.image.resize(dist, (batch.shape[0], height, width), "linear")
    if cfg.sigma > 0:  # As scipy.ndimage.gaussian_filter: 4 sigma each side, mirrored edges.
      r = int(4 * cfg.sigma + 0.5)
      maps = jnp.pad(maps, ((0, 0), (r, r), (r, r)), mode="symmetric")[..., None]
      maps = pix.gaussian_blur(maps, cfg.sigma, 2 * r + 1, padding="VALID")[..., 0]
    maps = jnp.where(state["fitted"] > 0, maps, jnp.nan)
    return {"score": maps.max(axis=(1, 2)), "map": maps}

  return base.Method(init, None, score, fit)
