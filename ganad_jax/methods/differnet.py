"""DifferNet: a normalizing flow on multi-scale pooled features, scored over rotated views.

Rudolph, Wandt, Rosenhahn, "Same Same But DifferNet: Semi-Supervised Defect
Detection with Normalizing Flows", WACV 2021. Ported item by item from the
reference code (marco-rudolph/differnet):

Followed:
  features (`model.DifferNet.forward`): the image at the backbone input
    size S (`pretrained.input_size`, the reference's 448) and nearest-
    downscaled to S/2 and S/4 (`F.interpolate`'s default), each through the
    frozen backbone, one stage (`differnet.layer`; AlexNet's `features` end
    at stride 32: here "stage7" of an EfficientNet, "layer4" of a ResNet by
    default) averaged over its positions; the 3 vectors concatenated.
  flow (`nf_head`): `flows.glow.GlowFlow`, 8 blocks of (fixed permutation
    seeded k, GLOW coupling with fully connected subnets of 2048 units), clamp 3.
  loss (`utils.get_loss`): mean over views of (0.5 ||z||^2 - log|det|) / D.
  optimiser (`train.py`): Adam lr 2e-4, betas (0.8, 0.8), eps 1e-4, weight
    decay 1e-5 (coupled, torch's), no gradient clipping; `train.batch_size`
    images (the reference's 24), each seen in `n_transforms` (4) views.
  score (`train.py`): the mean of z^2 over the views of an image and the
    dimensions of z.
  map (`localization.export_gradient_maps`): the gradient of the image's
    loss with respect to each view's pixels, rotated back, |.| averaged over
    the views and channels, Gaussian-smoothed (sigma `map_sigma` = 3 px),
    squared.
Differs (CPU budget, and determinism):
  views: the reference draws a random rotation in [-180, 180] degrees
    (torchvision RandomRotation, nearest, black fill) for every view, in
    training (4 per image) and at test (64 per image). Here the views are
    `n_views` fixed rotations by 360 k / n_views degrees (the reference's
    `get_fixed` mode, which its gradient maps use), computed once
    (`Method.embed`: features of every view of every training image); a
    train step draws `n_transforms` of them per image. Scores are thus
    deterministic; n_views = 64 is the reference's test count.
  The reference's colour jitter (brightness / contrast / saturation) is off
    in its config (0.0) and is not ported; dropout (0) neither.
  Rotations are applied to the image at its loaded size, before the
    backbone's resize to S (the reference resizes first); the map is the
    gradient at the loaded size, so no upsampling; the reference normalises
    each map to [0, 1] for display, here the raw values are kept so that
    maps are comparable across images.
  The reference evaluates on test labels every 8 epochs and reports the
  best; here a fixed budget, or early stopping on validation normals.

State: "net" (the backbone's variables), "params" (the flow's), "opt_state", "step".
"""

import dm_pix as pix
import jax
import jax.numpy as jnp

from ganad_jax.flows import glow
from ganad_jax.methods import base
from ganad_jax.methods import csflow

SCALES = 3
MAPS = ("gradient", "none")


def default_layer(name: str) -> str:
  """The stage pooled by default: the last stride-32 stage, as AlexNet's `features`."""
  return "stage7" if name.startswith("efficientnet-") else "layer4"


def rotate(x: jax.Array, degrees: jax.Array, fill: float = -1.0) -> jax.Array:
  """x (N, H, W, C) rotated counter-clockwise by `degrees` about its centre; nearest, `fill` outside.

  torchvision's `rotate` with its defaults (nearest, no expansion, black:
  -1 in the project's [-1, 1]).
  """
  turn = lambda img: pix.rotate(img, jnp.deg2rad(degrees), order=0, mode="constant", cval=fill)
  return jax.vmap(turn)(x)


def make(config, input_shape: tuple[int, ...]) -> base.Method:
  """Builds DifferNet for images of shape `input_shape` = (H, W, C), C in {1, 3}.

  Raises:
    ValueError: inputs that are not images, an unknown backbone, stage or
      map, or a backbone input too small for 3 scales (naming the field).
  """
  cfg = config.differnet
  input_shape = tuple(input_shape)
  csflow.check_images(input_shape, "differnet")
  if cfg.map not in MAPS:
    raise ValueError(f"differnet.map must be one of {MAPS}; got {cfg.map!r}.")
  nets, sizes = csflow.multiscale_backbones(config.pretrained, SCALES)
  layer = cfg.layer or default_layer(config.pretrained.backbone)
  if layer not in nets[0].stages:
    raise ValueError(f"differnet.layer={layer!r} is not among the stages of {nets[0].name}: "
                     f"{', '.join(nets[0].stages)}.")
  dim = SCALES * nets[0].stages[layer][2]
  n_views, n_transforms = int(cfg.n_views), int(cfg.n_transforms)
  angles = jnp.arange(n_views, dtype=jnp.float32) * (360.0 / n_views)
  flow = glow.GlowFlow(int(cfg.blocks), float(cfg.clamp), int(cfg.hidden))
  tx = csflow.reference_adam(cfg)
  extracts = [net.extract for net in nets]

  def pooled(v, x):
    """(N, D): the 3 scales' pooled stage, concatenated."""
    feats = csflow.scale_features(extracts, sizes, layer, v, x)
    return jnp.concatenate([jnp.mean(f, axis=(1, 2)) for f in feats], axis=-1)

  def views(x):
    """(N, K, H, W, C): the K fixed rotations of every image."""
    return jnp.stack([rotate(x, a) for a in angles], axis=1)

  def view_features(v, xv):
    n = xv.shape[0]
    return pooled(v, xv.reshape(n * n_views, *xv.shape[2:])).reshape(n, n_views, dim)

  def embed(state, x):
    """x (N, H, W, C) in [-1, 1] -> (N, n_views, D) float32: every view's features, frozen."""
    return jax.lax.stop_gradient(view_features(state["net"], views(x)))

  def init(key, batch):
    del batch
    params = flow.init(key, jnp.zeros((1, dim), jnp.float32))["params"]
    return {"step": jnp.zeros((), jnp.int32),
            "net": jax.tree_util.tree_map(jnp.asarray, nets[0].variables),
            "params": params, "opt_state": tx.init(params)}

  def train_step(state, feats, key):
    """One Adam step on `n_transforms` views drawn (with replacement) per image of `feats`."""
    b = feats.shape[0]
    pick = jax.random.randint(key, (b, n_transforms), 0, n_views)
    y = jnp.take_along_axis(feats, pick[..., None], axis=1).reshape(b * n_transforms, dim)

    def loss_fn(params):
      return glow.reference_loss(*flow.apply({"params": params}, y))

    loss, grads = jax.value_and_grad(loss_fn)(state["params"])
    params, opt_state = base.adam_update(tx, grads, state["opt_state"], state["params"])
    return base.next_state(state, params=params, opt_state=opt_state), {"loss": loss}

  def per_image(params, f):
    """(N,) score and (N,) loss of features f (N, K, D)."""
    n = f.shape[0]
    z, log_det = flow.apply({"params": params}, f.reshape(n * n_views, dim))
    z = z.reshape(n, n_views, dim)
    loss = jnp.mean(0.5 * jnp.sum(jnp.square(z), -1) - log_det.reshape(n, n_views), 1) / dim
    return jnp.mean(jnp.square(z), axis=(1, 2)), loss

  def score(state, batch, key):
    del key
    xv = views(batch.astype(jnp.float32))
    out = {"score": per_image(state["params"], view_features(state["net"], xv))[0]}
    if cfg.map == "gradient":
      total_loss = lambda v: jnp.sum(per_image(state["params"], view_features(state["net"], v))[1])
      grads = jax.grad(total_loss)(xv)  # (N, K, H, W, C): each image's own loss only.
      back = jnp.stack([rotate(grads[:, k], -angles[k], fill=0.0) for k in range(n_views)], 1)
      maps = jnp.mean(jnp.abs(back), axis=(1, 4))[..., None]
      if cfg.map_sigma > 0:  # As scipy.ndimage.gaussian_filter (4 sigma, mirrored edges).
        r = int(4 * cfg.map_sigma + 0.5)
        maps = jnp.pad(maps, ((0, 0), (r, r), (r, r), (0, 0)), mode="symmetric")
        maps = pix.gaussian_blur(maps, cfg.map_sigma, 2 * r + 1, padding="VALID")
      out["map"] = jnp.square(maps[..., 0])
    return out

  return base.Method(init, train_step, score, embed=embed)
