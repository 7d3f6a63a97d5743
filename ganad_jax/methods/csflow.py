"""CS-Flow: a fully convolutional cross-scale normalizing flow on frozen features at 3 scales.

Rudolph, Wehrbein, Rosenhahn, Wandt, "Fully Convolutional Cross-Scale-Flows
for Image-based Defect Detection", WACV 2022. Ported item by item from the
reference code (marco-rudolph/cs-flow):

Followed:
  features (`model.FeatureExtractor`): the image at the backbone input size S
    (`pretrained.input_size`, the reference's 768) and nearest-neighbour
    downscaled to S/2 and S/4 (`F.interpolate`'s default mode), each through
    the frozen backbone, one stage (`csflow.layer`; the reference's block 35
    of EfficientNet-B5 closes its stage 6, stride 32: here "stage6" of any
    EfficientNet, "layer3" of a ResNet by default), computed once before
    training (`Method.embed`) as the reference's `extract_features.py` does.
  flow (`get_cs_flow_model`): `flows.cross_scale.CrossScaleFlow`, 4 blocks of
    (fixed parallel permutation, parallel GLOW coupling with cross-scale
    convolutions), kernels (3, 3, 3, 5), hidden 1024, clamp 3.
  loss (`utils.get_loss`): mean over the batch of (0.5 ||z||^2 - sum of the
    scales' log|det|) / D, z every scale's output concatenated (D elements).
  optimiser (`train.py`): Adam lr 2e-4, betas (0.9, 0.999), eps 1e-4,
    weight decay 1e-5 added to the gradient after clipping its global norm to 1
    (torch's Adam weight_decay and clip_grad_norm_); batch 16
    (`train.batch_size`, set by the configs).
  score (`evaluate.py`): the mean of z^2 / 2 over every element of the 3
    scales (positions and channels, the scales weighted by their sizes);
    map: the mean over channels of z^2 at the largest scale, upsampled
    bilinearly (align_corners=False) to the input size.
Differs: the reference trains 4 x 60 epochs and reports the best of its 4
test evaluations (chosen on test labels); here a fixed budget
(`train.num_steps` / `num_epochs`), or early stopping on validation normals.
Any backbone of `methods/backbone.py` instead of B5 only; odd grids work
(`flows/cross_scale.py`). anomalib's cs_flow differs from the reference in
its map (an upsampled product or maximum over all scales); the reference's
is kept.

State: "net" (the backbone's variables), "params" (the flow's), "opt_state",
"step".
"""

import math

import jax
import jax.numpy as jnp
import ml_collections
import optax

from ganad_jax.flows import cross_scale
from ganad_jax.flows import glow
from ganad_jax.methods import backbone
from ganad_jax.methods import base

SCALES = 3  # The cross-scale convolutions join exactly 3 scales.


def default_layer(name: str) -> str:
  """The backbone stage CS-Flow reads by default: stride 32 of an EfficientNet, 16 of a ResNet."""
  return "stage6" if name.startswith("efficientnet-") else "layer3"


def reference_adam(cfg: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """torch's Adam of the flow references, from a method section's optimiser fields.

  Order as torch: clip the gradient's global norm to `max_grad_norm` (0 = no
  clipping), add `weight_decay` * params (torch Adam's coupled L2), Adam
  (b1, b2, eps), step of `lr`.
  """
  parts = [optax.clip_by_global_norm(cfg.max_grad_norm)] if cfg.max_grad_norm > 0 else []
  parts += [optax.add_decayed_weights(cfg.weight_decay),
            optax.scale_by_adam(b1=cfg.b1, b2=cfg.b2, eps=cfg.eps),
            optax.scale(-cfg.lr)]
  return optax.chain(*parts)


def multiscale_backbones(pretrained_cfg: ml_collections.ConfigDict, scales: int):
  """The backbone at input sizes S, S/2, ..., S/2^(scales-1) (one set of variables).

  Returns:
    (variables, [extract at each size], sizes).

  Raises:
    ValueError: S / 2^(scales-1) under the backbones' 32 px minimum (naming
      pretrained.input_size), or as `backbone.load`.
  """
  if pretrained_cfg.backbone not in backbone.NATIVE_SIZE:
    raise ValueError(f"pretrained.backbone={pretrained_cfg.backbone!r} is not one of "
                     f"{', '.join(backbone.NAMES)}.")
  size = int(pretrained_cfg.input_size) or backbone.NATIVE_SIZE[pretrained_cfg.backbone]
  sizes = [size // 2**s for s in range(scales)]
  if sizes[-1] < 32:
    raise ValueError(f"pretrained.input_size={pretrained_cfg.input_size}: the smallest of "
                     f"{scales} scales would be {sizes[-1]} px, under the backbones' 32; use "
                     f">= {32 * 2**(scales - 1)}.")
  nets = []
  for s in sizes:
    cfg = ml_collections.ConfigDict(pretrained_cfg.to_dict())
    cfg.input_size = s
    nets.append(backbone.load(cfg))
  return nets, sizes


def check_images(input_shape: tuple[int, ...], name: str) -> None:
  """ValueError unless `input_shape` is an image (H, W, 1 or 3)."""
  if len(input_shape) != 3 or input_shape[-1] not in (1, 3):
    raise ValueError(f"{name} needs images (H, W, 1 or 3); got inputs of shape {input_shape}.")


def scale_features(extracts, sizes, layer: str, variables, x) -> list[jax.Array]:
  """`layer` of the image at each of `sizes` (the reference's input scales), float32 maps.

  x (N, H, W, C) in [-1, 1] is resized (bilinear, antialiased) to sizes[0],
  then nearest-downscaled to each smaller size, as the reference does;
  extracts[s] is the backbone built for sizes[s]. Shared with DifferNet.
  """
  x = x.astype(jnp.float32)
  big = jax.image.resize(x, (x.shape[0], sizes[0], sizes[0], x.shape[-1]), "linear",
                         antialias=True)
  feats = []
  for s, extract in enumerate(extracts):
    xs = big if s == 0 else jax.image.resize(
        big, (x.shape[0], sizes[s], sizes[s], x.shape[-1]), "nearest")
    feats.append(extract(variables, xs)[layer])
  return feats


def make(config, input_shape: tuple[int, ...]) -> base.Method:
  """Builds CS-Flow for images of shape `input_shape` = (H, W, C), C in {1, 3}.

  Raises:
    ValueError: inputs that are not images, an unknown backbone or stage, a
      backbone input too small for 3 scales, or feature grids that do not
      halve from scale to scale (naming the field).
  """
  cfg = config.csflow
  input_shape = tuple(input_shape)
  check_images(input_shape, "csflow")
  nets, sizes = multiscale_backbones(config.pretrained, SCALES)
  layer = cfg.layer or default_layer(config.pretrained.backbone)
  if layer not in nets[0].stages:
    raise ValueError(f"csflow.layer={layer!r} is not among the stages of {nets[0].name}: "
                     f"{', '.join(nets[0].stages)}.")
  grids = [net.stages[layer][:2] for net in nets]
  for (h0, w0), (h1, w1) in zip(grids, grids[1:]):
    if (h1, w1) != (math.ceil(h0 / 2), math.ceil(w0 / 2)):
      raise ValueError(f"csflow: the grids of {layer} at inputs {sizes} px are {grids}; the "
                       "cross-scale convolutions need each scale's grid half the previous one "
                       "(rounded up); use a pretrained.input_size that is a multiple of 128.")
  channels = nets[0].stages[layer][2]
  height, width = input_shape[:2]
  flow = cross_scale.CrossScaleFlow(tuple(int(k) for k in cfg.kernels), int(cfg.hidden),
                                    float(cfg.clamp))
  tx = reference_adam(cfg)
  extracts = [net.extract for net in nets]

  def embed(state, x):
    """x (N, H, W, C) in [-1, 1] -> 3 float32 maps (N, h_s, w_s, channels), frozen."""
    feats = scale_features(extracts, sizes, layer, state["net"], x)
    return tuple(jax.lax.stop_gradient(f) for f in feats)

  def init(key, batch):
    del batch  # The flow's shapes come from the backbone's grids.
    dummy = tuple(jnp.zeros((1, *g, channels), jnp.float32) for g in grids)
    params = flow.init(key, dummy)["params"]
    return {"step": jnp.zeros((), jnp.int32),
            "net": jax.tree_util.tree_map(jnp.asarray, nets[0].variables),
            "params": params, "opt_state": tx.init(params)}

  def loss_fn(params, feats):
    zs, log_dets = flow.apply({"params": params}, feats)
    z = jnp.concatenate([z.reshape(z.shape[0], -1) for z in zs], axis=1)
    return glow.reference_loss(z, sum(log_dets))

  def train_step(state, feats, key):
    """One Adam step of the flow on a batch of `embed` features."""
    del key  # Deterministic given the batch.
    loss, grads = jax.value_and_grad(loss_fn)(state["params"], feats)
    params, opt_state = base.adam_update(tx, grads, state["opt_state"], state["params"])
    return base.next_state(state, params=params, opt_state=opt_state), {"loss": loss}

  def score(state, batch, key):
    del key
    zs, _ = flow.apply({"params": state["params"]}, embed(state, batch))
    n = batch.shape[0]
    z = jnp.concatenate([z.reshape(n, -1) for z in zs], axis=1)
    maps = jnp.mean(jnp.square(zs[0]), axis=-1)
    maps = jax.image.resize(maps, (n, height, width), "linear", antialias=False)
    return {"score": jnp.mean(jnp.square(z) / 2, axis=1), "map": maps}

  return base.Method(init, train_step, score, embed=embed)
