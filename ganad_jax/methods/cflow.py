"""CFlow-AD: conditional flows over per-location feature vectors, with positional encodings.

Gudovskiy, Ishizaka, Kozuka, "CFLOW-AD: Real-Time Unsupervised Anomaly
Detection with Localization via Conditional Normalizing Flows", WACV 2022;
ported from gudovskiy/cflow-ad (`model.py`, `train.py`, `main.py`,
`utils.py`).

Followed: per chosen stage ("pool layer") one flow ("freia-cflow") of
`coupling_blocks` FrEIA AllInOneBlocks (`flows/coupling.py`) over the
stage's C-dimensional vector at each location, with soft permutations
(random rotations), SOFTPLUS global affine, clamp 1.9 and fully connected
subnets (Linear(in, 2 in), ReLU, Linear), conditioned on the location's 2-D
sinusoidal positional encoding of `condition_vec` (128) dimensions
concatenated to the subnet's input; the per-dimension log-likelihood
log p / C with log p = -C log sqrt(2 pi) - 0.5 |z|^2 + log|det J| (`get_logp`)
and the loss -log sigmoid(log p / C); training on "fiber batches": each
batch's B h w locations shuffled and cut into batches of `fiber_batch` (256)
vectors, one Adam step each (lr from `config.optim`: the reference's 2e-4),
level after level, each level with its own optimiser state (the levels
share no parameter). The map: per level exp(log p / C - M) bilinearly
upsampled with aligned corners (`flows.spatial.resize_align_corners`) to the
input size, summed over levels and negated; the image score, its maximum.
Stages: a ResNet's layer2-4 (the reference's); an EfficientNet's stage3,
stage5, stage6 (the reference's EfficientNet-B5 blocks -5, -3, -2).

Differs: `fiber_steps` > 0 takes only that many fiber batches per level and
step (the reference takes all B h w // 256: with the cached features one
train step is then up to hundreds of Adam steps); the learning-rate warm-up
and cosine decay are not ported (a constant `optim.lr`); the reference's M
is the maximum over the whole test set of each level's log p / C (so a
score depends on what else is scored; anomalib does it per batch, which
misbehaves at batch size 1, its PR #589): here M is kept in the state, the
maximum of log p / C over the fibers of the last train step, so an image's
score depends on the image and the state only; the reference's map is then
max(sum) - sum over the test set, here -sum (the same order within a run).

Extra output: "score_nll", the mean over levels and locations of -log p / C
(what early stopping on validation normals can watch).

`embed(state, x)` is the chosen stages; `loss(params, features)` is the mean
over levels of the fiber loss at every location (for first-step
comparisons).

State: "net" (the backbone's variables), "params" {stage: flow params},
"opt_state" {stage: Adam state}, "log_prob_max" {stage: () float32}, "step".
"""

import jax
import jax.numpy as jnp

from ganad_jax.flows import coupling
from ganad_jax.flows import likelihood
from ganad_jax.flows import spatial
from ganad_jax.methods import base
from ganad_jax.methods import flow_features

DEFAULT_LAYERS = {"efficientnet": ("stage3", "stage5", "stage6"),
                  "resnet": ("layer2", "layer3", "layer4")}


def make(config, input_shape: tuple[int, ...]) -> base.Method:
  """Builds CFlow-AD for images of shape `input_shape` = (H, W, C), C in {1, 3}.

  Raises:
    ValueError: inputs that are not such images, an unknown backbone or
      stage, a `condition_vec` that is not a multiple of 4.
  """
  return build(config, input_shape)[0]


def build(config, input_shape: tuple[int, ...]):
  """(method, loss): `make`'s method and loss(params, features) -> scalar, a pure function."""
  cfg = config.cflow
  input_shape = flow_features.check_images(input_shape, "cflow")
  net, layers = flow_features.load_stages(config, "cflow", cfg.layers, DEFAULT_LAYERS)
  p_dim, fiber = int(cfg.condition_vec), int(cfg.fiber_batch)
  encodings = {n: spatial.positional_encoding_2d(p_dim, *net.stages[n][:2]).reshape(-1, p_dim)
               for n in layers}
  flows = {n: coupling.Flow((0,) * int(cfg.coupling_blocks), "dense", clamp=float(cfg.clamp),
                            permute_soft=True, seed=i)
           for i, n in enumerate(layers)}
  tx = flow_features.adam(config, 0.0)
  embed = flow_features.make_embed(net, layers)
  height, width = input_shape[:2]

  def log_prob(name, params, e, c):
    """log p / C per vector: e (E, C), c (E, P) -> (E,)."""
    z, logdet = flows[name].apply({"params": params}, e, c)
    return likelihood.flow_log_prob(z, logdet) / e.shape[-1]

  def fiber_loss(name, params, e, c):
    lp = log_prob(name, params, e, c)
    return jnp.mean(-jax.nn.log_sigmoid(lp)), jnp.max(lp)

  def vectors(name, f):
    """(B h w, C) vectors of one stage's features f (B, h, w, C), and their encodings (B h w, P)."""
    b = f.shape[0]
    return f.reshape(-1, f.shape[-1]), jnp.tile(encodings[name], (b, 1))

  def loss(params, features):
    """Mean over levels of -log sigmoid(log p / C) over every location of `features`."""
    return sum(fiber_loss(n, params[n], *vectors(n, features[n]))[0] for n in layers) / len(layers)

  def init(key, batch):
    del batch
    keys = jax.random.split(key, len(layers))
    params = {n: flows[n].init(k, jnp.zeros((1, net.stages[n][2])), jnp.zeros((1, p_dim)))["params"]
              for n, k in zip(layers, keys)}
    return {"step": jnp.zeros((), jnp.int32), "net": flow_features.frozen(net), "params": params,
            "opt_state": {n: tx.init(params[n]) for n in layers},
            "log_prob_max": {n: jnp.zeros((), jnp.float32) for n in layers}}

  def train_level(name, params, opt_state, e, c, key):
    """Adam steps on one level's shuffled fiber batches: (params, opt_state, loss, max log p / C)."""
    n = e.shape[0]
    size = min(fiber, n)
    count = n // size if not cfg.fiber_steps else min(int(cfg.fiber_steps), n // size)
    perm = jax.random.permutation(key, n)[:count * size].reshape(count, size)

    def one(carry, idx):
      params, opt_state = carry
      (value, top), grads = jax.value_and_grad(
          lambda p: fiber_loss(name, p, e[idx], c[idx]), has_aux=True)(params)
      params, opt_state = base.adam_update(tx, grads, opt_state, params)
      return (params, opt_state), (value, top)

    (params, opt_state), (values, tops) = jax.lax.scan(one, (params, opt_state), perm)
    return params, opt_state, jnp.mean(values), jnp.max(tops)

  def train_step(state, features, key):
    params, opt_state, top = dict(state["params"]), dict(state["opt_state"]), {}
    values = []
    for n, k in zip(layers, jax.random.split(key, len(layers))):
      params[n], opt_state[n], value, top[n] = train_level(
          n, params[n], opt_state[n], *vectors(n, features[n]), k)
      values.append(value)
    metrics = {"loss": sum(values) / len(values)}
    return base.next_state(state, params=params, opt_state=opt_state,
                           log_prob_max=jax.lax.stop_gradient(top)), metrics

  def score(state, batch, key):
    del key
    features = embed(state, batch)
    total = jnp.zeros((batch.shape[0], height, width), jnp.float32)
    nll = jnp.zeros((batch.shape[0],), jnp.float32)
    for n in layers:
      h, w = net.stages[n][:2]
      lp = log_prob(n, state["params"][n], *vectors(n, features[n])).reshape(-1, h, w)
      nll = nll - jnp.mean(lp, axis=(1, 2)) / len(layers)
      prob = jnp.exp(lp - state["log_prob_max"][n])
      total = total + spatial.resize_align_corners(prob, (height, width))
    amap = -total
    return {"score": amap.max(axis=(1, 2)), "map": amap, "score_nll": nll}

  return base.Method(init, train_step, score, embed=embed), loss
