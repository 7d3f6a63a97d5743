"""FastFlow: 2-D normalizing flows on the stages of a frozen backbone.

Yu, Zheng, Chen, Wang, Li, Zhang, Huang, "FastFlow: Unsupervised Anomaly
Detection and Localization via 2D Normalizing Flows", arXiv 2111.07677
(2021); ported from gathierry/FastFlow (`fastflow.py`, `constants.py`,
`configs/*.yaml`), which anomalib's `fastflow` follows.

Followed: per chosen stage a trainable LayerNorm over the whole (h, w, c)
feature map with per-element affine (the reimplementation's "critical"
LayerNorm), then a flow of `flow_steps` FrEIA AllInOneBlocks
(`flows/coupling.py`) with hard permutations, clamp 2, and conv subnets
(conv k, ReLU, conv k, hidden = int(c * hidden_ratio)), kernels alternating
3, 1, 3, 1, ... unless `conv3x3_only`; the loss, summed over stages, the
batch mean of 0.5 sum z^2 - log|det J| (`flows.likelihood.fastflow_nll`); Adam
with L2 weight decay 1e-5 (the optimiser's lr from `config.optim`; the
reference's 1e-3, b1 0.9); the map, the mean over stages of
-exp(-0.5 mean_c z^2) bilinearly upsampled (half-pixel centres, PyTorch's
align_corners=False) to the input size; the image score, the map's maximum
(anomalib; gathierry's code reports pixel AUROC only).
Stages: a ResNet's layer1-3 (strides 4, 8, 16, the reference's
out_indices=[1, 2, 3]); an EfficientNet's stage2, stage3, stage5 (the last
stage at each of strides 4, 8, 16; the reference has no EfficientNet).
Differs: the transformer backbones (CaiT, DeiT) are not ported; the
permutations are fixed by the architecture (`flows/coupling.py`).
Extra output: "score_nll", each image's loss (summed over stages).

`embed(state, x)` is the chosen stages; `loss(params, features)` is the
training loss as a pure function (for first-step comparisons).

State: "net" (the backbone's variables), "params" {stage: {"norm", "flow"}},
"opt_state", "step".
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from ganad_jax.flows import coupling
from ganad_jax.flows import likelihood
from ganad_jax.methods import base
from ganad_jax.methods import flow_features

DEFAULT_LAYERS = {"efficientnet": ("stage2", "stage3", "stage5"),
                  "resnet": ("layer1", "layer2", "layer3")}


class StageFlows(nn.Module):
  """{stage: features (N, h, w, c)} -> {stage: (z (N, h, w, c), log|det J| (N,))}."""
  layers: tuple[str, ...]
  flow_steps: int = 8
  conv3x3_only: bool = False
  hidden_ratio: float = 1.0
  clamp: float = 2.0

  @nn.compact
  def __call__(self, features):
    kernels = tuple(1 if i % 2 == 1 and not self.conv3x3_only else 3
                    for i in range(self.flow_steps))
    out = {}
    for i, name in enumerate(self.layers):
      x = nn.LayerNorm(epsilon=1e-5, reduction_axes=(-3, -2, -1), feature_axes=(-3, -2, -1),
                       name=f"norm_{name}")(features[name])
      out[name] = coupling.Flow(kernels, "conv", self.hidden_ratio, self.clamp, seed=i,
                                name=f"flow_{name}")(x)
    return out


def make(config, input_shape: tuple[int, ...]) -> base.Method:
  """Builds FastFlow for images of shape `input_shape` = (H, W, C), C in {1, 3}.

  Raises:
    ValueError: inputs that are not such images, an unknown backbone or stage.
  """
  return build(config, input_shape)[0]


def build(config, input_shape: tuple[int, ...]):
  """(method, loss): `make`'s method and its loss(params, features) -> scalar, a pure function."""
  cfg = config.fastflow
  input_shape = flow_features.check_images(input_shape, "fastflow")
  net, layers = flow_features.load_stages(config, "fastflow", cfg.layers, DEFAULT_LAYERS)
  model = StageFlows(layers, int(cfg.flow_steps), bool(cfg.conv3x3_only),
                     float(cfg.hidden_ratio), float(cfg.clamp))
  tx = flow_features.adam(config, float(cfg.weight_decay))
  embed = flow_features.make_embed(net, layers)
  height, width = input_shape[:2]

  def per_image_nll(params, features):
    outs = model.apply({"params": params}, features)
    return sum(likelihood.fastflow_nll(z, logdet) for z, logdet in outs.values()), outs

  def loss(params, features):
    """The training loss: sum over stages of the batch mean of 0.5 sum z^2 - logdet."""
    return jnp.mean(per_image_nll(params, features)[0])

  def init(key, batch):
    del batch
    params = model.init(key, flow_features.example_features(net, layers))["params"]
    return {"step": jnp.zeros((), jnp.int32), "net": flow_features.frozen(net),
            "params": params, "opt_state": tx.init(params)}

  def train_step(state, features, key):
    del key  # Deterministic given the batch.
    value, grads = jax.value_and_grad(loss)(state["params"], features)
    params, opt_state = base.adam_update(tx, grads, state["opt_state"], state["params"])
    return base.next_state(state, params=params, opt_state=opt_state), {"loss": value}

  def score(state, batch, key):
    del key
    nll, outs = per_image_nll(state["params"], embed(state, batch))
    maps = [jax.image.resize(-jnp.exp(likelihood.location_log_prob(z)),
                             (batch.shape[0], height, width), "linear")
            for z, _ in outs.values()]
    amap = sum(maps) / len(maps)
    return {"score": amap.max(axis=(1, 2)), "map": amap, "score_nll": nll}

  return base.Method(init, train_step, score, embed=embed), loss
