"""MSFlow: parallel flows per scale and a fusion flow across scales.

Zhou, Xu, Zhang, Liu, Lin, "MSFlow: Multi-Scale Flow-based Framework for
Unsupervised Anomaly Detection", IEEE TNNLS 2024; ported from cool-xuan/msflow
(`train.py`, `models/flow_models.py`, `models/freia_utils.py`,
`post_process.py`, `default.py`).

Followed: the chosen stages, each average-pooled (3x3, stride 2, padding 1,
zeros counted: `flows.spatial.avg_pool_3x3`); per scale a parallel flow of
`parallel_blocks` (2, 5, 8) FrEIA AllInOneBlocks with hard permutations,
clamp 1.9 and conv subnets with LayerNorm (conv 3x3, LayerNorm over
channels, ReLU, conv 3x3), conditioned on a 2-D positional encoding of
`c_conds` (64) channels; then the fusion flow (`flows/fusion.py`); the loss,
the batch mean of sum over scales of 0.5 |z|^2 minus the total log|det J|;
Adam (lr from `config.optim`, the reference's 1e-4, b1 0.9) with gradients
clipped to norm 2. Scoring (`post_process.py`): per scale
log p = -0.5 mean_c z^2, bilinearly upsampled with aligned corners to the
input size. Map ("add"): per scale exp(log p - its per-image maximum),
upsampled, summed, subtracted from its per-image maximum. Image score
("mul"): the upsampled log p summed over scales, minus its per-image
maximum, exp, subtracted from its maximum (1), the mean of its top
`top_k` (3 %) pixels.
Stages: a ResNet's layer1-3 (the reference's); an EfficientNet's stage2,
stage3, stage5 (the last stage at each of strides 4, 8, 16).
Differs: the learning-rate warm-up and step decay are not ported (a constant
`optim.lr`); mixed precision (the reference's `amp_enable`) is not ported;
permutations are fixed by the architecture (`flows/coupling.py`).
Extra output: "score_nll", each image's loss.

`embed(state, x)` is the pooled stages; `loss(params, features)` is the
training loss as a pure function.

State: "net" (the backbone's variables), "params" {"parallel_<stage>",
"fusion"}, "opt_state", "step".
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from ganad_jax.flows import coupling
from ganad_jax.flows import fusion
from ganad_jax.flows import likelihood
from ganad_jax.flows import spatial
from ganad_jax.methods import base
from ganad_jax.methods import flow_features

DEFAULT_LAYERS = {"efficientnet": ("stage2", "stage3", "stage5"),
                  "resnet": ("layer1", "layer2", "layer3")}


class MSFlowNet(nn.Module):
  """{stage: pooled features (N, h, w, c)} -> ([z per stage], total log|det J| (N,))."""
  layers: tuple[str, ...]
  blocks: Sequence[int]
  conds: Sequence[int]
  clamp: float = 1.9

  @nn.compact
  def __call__(self, features):
    zs, logdet = [], 0.0
    for i, name in enumerate(self.layers):
      x = features[name]
      n, h, w, _ = x.shape
      cond = jnp.broadcast_to(spatial.positional_encoding_2d(self.conds[i], h, w),
                              (n, h, w, self.conds[i]))
      z, j = coupling.Flow((3,) * self.blocks[i], "conv_ln", clamp=self.clamp, seed=i,
                           name=f"parallel_{name}")(x, cond)
      zs.append(z)
      logdet = logdet + j
    zs, j = fusion.FusionFlow(self.clamp, seed=len(self.layers), name="fusion")(zs)
    return zs, logdet + j


def make(config, input_shape: tuple[int, ...]) -> base.Method:
  """Builds MSFlow for images of shape `input_shape` = (H, W, C), C in {1, 3}.

  Raises:
    ValueError: inputs that are not such images, an unknown backbone or
      stage, `parallel_blocks` / `c_conds` not one per stage, a stage with an
      odd channel count (the fusion coupling halves each).
  """
  return build(config, input_shape)[0]


def build(config, input_shape: tuple[int, ...]):
  """(method, loss): `make`'s method and loss(params, features) -> scalar, a pure function."""
  cfg = config.msflow
  input_shape = flow_features.check_images(input_shape, "msflow")
  net, layers = flow_features.load_stages(config, "msflow", cfg.layers, DEFAULT_LAYERS)
  for field in ("parallel_blocks", "c_conds"):
    if len(cfg[field]) != len(layers):
      raise ValueError(f"msflow.{field}={tuple(cfg[field])!r}: one per stage of "
                       f"{', '.join(layers)}.")
  odd = [f"{n} ({net.stages[n][2]})" for n in layers if net.stages[n][2] % 2]
  if odd:
    raise ValueError(f"msflow.layers: the fusion flow halves each stage's channels; odd: "
                     f"{', '.join(odd)}.")
  model = MSFlowNet(layers, tuple(int(b) for b in cfg.parallel_blocks),
                    tuple(int(c) for c in cfg.c_conds), float(cfg.clamp))
  tx = flow_features.adam(config, 0.0, float(cfg.grad_clip))
  extract = flow_features.make_embed(net, layers)
  height, width = input_shape[:2]
  top = max(1, int(height * width * float(cfg.top_k)))

  def embed(state, x):
    return {n: spatial.avg_pool_3x3(f) for n, f in extract(state, x).items()}

  def per_image_nll(params, features):
    zs, logdet = model.apply({"params": params}, features)
    return sum(0.5 * jnp.sum(jnp.square(z), axis=(1, 2, 3)) for z in zs) - logdet, zs

  def loss(params, features):
    """The training loss: batch mean of sum over scales of 0.5 |z|^2 minus log|det J|."""
    return jnp.mean(per_image_nll(params, features)[0])

  def init(key, batch):
    del batch
    example = flow_features.example_features(net, layers)
    pooled = {n: spatial.avg_pool_3x3(f) for n, f in example.items()}
    params = model.init(key, pooled)["params"]
    return {"step": jnp.zeros((), jnp.int32), "net": flow_features.frozen(net),
            "params": params, "opt_state": tx.init(params)}

  def train_step(state, features, key):
    del key  # Deterministic given the batch.
    value, grads = jax.value_and_grad(loss)(state["params"], features)
    params, opt_state = base.adam_update(tx, grads, state["opt_state"], state["params"])
    return base.next_state(state, params=params, opt_state=opt_state), {"loss": value}

  def per_image_max(x):
    return x.max(axis=(1, 2), keepdims=True)

  def score(state, batch, key):
    del key
    nll, zs = per_image_nll(state["params"], embed(state, batch))
    size = (height, width)
    log_probs = [likelihood.location_log_prob(z) for z in zs]
    log_map = sum(spatial.resize_align_corners(lp, size) for lp in log_probs)
    prob_mul = jnp.exp(log_map - per_image_max(log_map))
    mul = per_image_max(prob_mul) - prob_mul
    scores = jnp.mean(jax.lax.top_k(mul.reshape(batch.shape[0], -1), top)[0], axis=1)
    added = sum(spatial.resize_align_corners(jnp.exp(lp - per_image_max(lp)), size)
                for lp in log_probs)
    return {"score": scores, "map": per_image_max(added) - added, "score_nll": nll}

  return base.Method(init, train_step, score, embed=embed), loss
