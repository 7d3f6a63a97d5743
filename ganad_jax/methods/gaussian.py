"""Gaussian / Mahalanobis scorer on features (Rippel et al. 2020): fitted in closed form.

For every chosen layer, the features of the normal training split get a mean
and a Ledoit-Wolf shrunk covariance (`sklearn.covariance.LedoitWolf`, fitted in
float64 on the host by `fit`; the method has no `train_step`). The score of x
is the sum over layers of its Mahalanobis distance to the layer's Gaussian
(`squared` False, as Rippel et al.) or of the squared distances (`squared`
True: each layer then contributes ~ its dimension for normal data). With
several layers, each layer's term is also returned as "score_<layer>".

Feature sources (`features`):
  "pixels": the flattened inputs, one layer "pixels" (tabular data, small images).
  "workdir": a net of the trained ganad_jax run in `workdir`, restored from its
    newest good checkpoint (`ganad_jax.workdir.restore`) and run in eval mode:
    `net` is one of the run's method's `features` (`base.FeatureNet`):
    "encoder" (ae, ssim_ae, egbad, vae) or "discriminator" (anogan, egbad;
    EGBAD's sees (x, E(x))); of an ensemble workdir, member `member`'s.
  "pretrained": an ImageNet backbone (config section `pretrained`:
    EfficientNet B0-B7 / Lite0-4, ResNet-18/34/50, Wide-ResNet-50-2; see
    `methods/backbone.py`), gray-to-RGB, resizing and input normalisation
    inside; its layers are the stage outputs ("stem", "stage1".."stage7",
    "head" for EfficientNet: the 9 levels of Rippel et al.), each global
    average pooled.
  "flax_file": any flax.linen module `module` ("package.module:Class"), built
    with the JSON object `module_kwargs` and called as
    `module.apply(variables, x, **call_kwargs)`, its variables read from the
    msgpack file `weights` (`flax.serialization.to_bytes` of the variables dict
    or of the params alone).

Layers: a net's output is the layer "output"; nets that return
(output, features dict), like ours, or a dict also offer the dict's names; a
flax_file module's other layers are its submodules' outputs by path ("Dense_0",
"Block_0/Conv_1", via `capture_intermediates`). `layers` () takes every layer
the net returns, counting an array returned under two names once (our nets'
"penultimate" is also their last "block<i>"). Conv maps (N, H, W, C) are global
average pooled (`pool` 'mean') or flattened ('flatten'); others are flattened.

Level selection without anomaly labels (`select_levels` k > 0): after the
fit, every layer's Gaussian scores the validation normals and CutPaste copies
of them (`data.synthetic.cutpaste`, seeded with `config.seed`); the k layers
with the highest AUROC of copies against originals form the score, the others
stay reported as "score_<layer>". Test labels choose nothing. k = 0 sums
every layer (Rippel et al.).

State: "net" (the feature net's variables, so a checkpoint is self-contained),
"stats" {"layer<i>": {"mean": (D,), "whitening": (D, D)}} with
whitening @ whitening.T = the precision matrix, so that the squared distance
|(f - mean) @ whitening|^2 is >= 0 in any float precision, and "fitted" (1
after `fit`; before it every score is NaN, so an unfitted state cannot pass
for a model), "level_weights" (L,) (1 for the layers that form the score, 0
for the others) and "selection_auroc" (L,) (each layer's CutPaste AUROC on
the validation normals; -1 without selection).
"""

import importlib
import json
import os
import re

from absl import logging
import flax
import flax.linen as nn
from flax import traverse_util
import jax
import jax.numpy as jnp
import numpy as np
from sklearn import covariance

from ganad_jax import metrics
from ganad_jax.configs.methods import gaussian as gaussian_config
from ganad_jax import run_outputs
from ganad_jax.data import synthetic
from ganad_jax.methods import backbone
from ganad_jax.methods import base
from ganad_jax.methods import runs

FEATURES, POOLS = gaussian_config.FEATURES, gaussian_config.POOLS


def _outputs_as_layers(out) -> dict:
  """A net's output as named layers: (output, features dict), a dict, or an array."""
  if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict):
    return {**out[1], "output": out[0]}
  if isinstance(out, dict):
    return dict(out)
  return {"output": out}


def _workdir_source(cfg, input_shape):
  """(variables, layers_fn, None) of `cfg.net` of the trained run `cfg.workdir`.

  The net is one of the run's method's `features` (`base.FeatureNet`). An
  ensemble workdir's nets are those of member `cfg.member` (0 <= k < M),
  restored as the single run it equals; without it (-1) the run is refused.
  The run is read by `ganad_jax.workdir.restore`, through `methods.runs`.

  Raises:
    ValueError: no or no trained workdir, an ensemble workdir without a valid
      `gaussian.member` (or a member given for a single run), a method
      without feature nets, an unknown net; each naming the field and value.
  """
  if not cfg.workdir:
    raise ValueError("gaussian.features='workdir' needs gaussian.workdir (a trained run).")
  member = None if cfg.member < 0 else int(cfg.member)
  try:
    # A member's nets are built from its own config (its grid point's values).
    trained = runs.restore(cfg.workdir, tuple(input_shape), member=member,
                           pick_with="gaussian.member=k")
  except (FileNotFoundError, ValueError) as e:
    raise ValueError(f"gaussian.workdir={cfg.workdir!r}: {e}") from None
  if trained.config.patch.size:
    raise ValueError(f"gaussian.workdir={cfg.workdir!r} was trained with the patch protocol "
                     f"(patch.size={trained.config.patch.size}): its nets take crops, not the "
                     f"{tuple(input_shape)} inputs of this run.")
  nets = trained.method.features
  if not nets:
    raise ValueError(f"gaussian.workdir={cfg.workdir!r} is a {trained.config.method!r} run, "
                     "which has no feature nets for the Gaussian scorer (its method exports "
                     "none in `Method.features`).")
  if cfg.net not in nets:
    raise ValueError(f"gaussian.net={cfg.net!r}: a {trained.config.method!r} run has no such "
                     f"net; it has: {', '.join(sorted(nets))}.")
  net = nets[cfg.net]
  variables = jax.device_get(net.select(trained.state))
  return variables, lambda v, x: _outputs_as_layers(net.apply(v, x)), None


def _json_object(text: str, field: str) -> dict:
  try:
    value = json.loads(text)
  except json.JSONDecodeError as e:
    raise ValueError(f"{field}={text!r} is not valid JSON: {e}.") from None
  if not isinstance(value, dict):
    raise ValueError(f"{field} must be a JSON object ({{...}}); got {text!r}.")
  return value


def _flax_module(cfg) -> nn.Module:
  spec = cfg.module
  module_name, sep, class_name = spec.partition(":")
  if not (sep and module_name and class_name):
    raise ValueError(f"gaussian.module={spec!r} must be 'package.module:Class'.")
  try:
    py_module = importlib.import_module(module_name)
  except ImportError as e:
    raise ValueError(f"gaussian.module={spec!r}: cannot import {module_name!r} ({e}).") from None
  cls = getattr(py_module, class_name, None)
  if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
    raise ValueError(f"gaussian.module={spec!r}: {module_name} has no flax.linen.Module class "
                     f"{class_name!r}.")
  kwargs = _json_object(cfg.module_kwargs, "gaussian.module_kwargs")
  try:
    return cls(**kwargs)
  except TypeError as e:
    raise ValueError(f"gaussian.module_kwargs={cfg.module_kwargs!r} do not fit {spec}: {e}.") \
        from None


def _check_variables(restored, target, path: str):
  """Raises ValueError unless `restored` has exactly the paths and shapes of `target`."""
  have = {"/".join(k): np.shape(v) for k, v in traverse_util.flatten_dict(restored).items()}
  want = {"/".join(k): tuple(v.shape) for k, v in traverse_util.flatten_dict(target).items()}
  problems = [f"missing {k} {s}" for k, s in want.items() if k not in have]
  problems += [f"unexpected {k}" for k in have if k not in want]
  problems += [f"{k} has shape {have[k]}, the module needs {s}"
               for k, s in want.items() if k in have and tuple(have[k]) != s]
  if problems:
    shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5
                                       else "")
    raise ValueError(f"gaussian.weights={path!r} does not match gaussian.module: {shown}.")


def _flax_file_source(cfg, input_shape):
  """(variables, layers_fn, capture_fn) of a flax.linen module with weights from a msgpack file."""
  module = _flax_module(cfg)
  call_kwargs = _json_object(cfg.call_kwargs, "gaussian.call_kwargs")
  if not cfg.weights or not os.path.isfile(cfg.weights):
    raise ValueError(f"gaussian.weights={cfg.weights!r} is not a file (a msgpack file written "
                     "with flax.serialization.to_bytes).")
  with open(cfg.weights, "rb") as f:
    try:
      restored = flax.serialization.msgpack_restore(f.read())
    except Exception as e:  # pylint: disable=broad-except  # msgpack raises several types.
      raise ValueError(f"gaussian.weights={cfg.weights!r} is not a flax msgpack file: "
                       f"{type(e).__name__}: {e}.") from None
  example = jnp.zeros((1,) + tuple(input_shape), jnp.float32)
  target = jax.eval_shape(lambda: module.init(jax.random.key(0), example, **call_kwargs))
  if not isinstance(restored, dict):
    raise ValueError(f"gaussian.weights={cfg.weights!r} does not hold a dict of variables.")
  if "params" in target and "params" not in restored:
    restored = {"params": restored}  # A file of the params alone.
  _check_variables(restored, target, cfg.weights)
  variables = jax.tree_util.tree_map(np.asarray, restored)

  def layers_fn(v, x):
    return _outputs_as_layers(module.apply(v, x, **call_kwargs))

  def capture_fn(v, x):
    out, state = module.apply(v, x, capture_intermediates=True, mutable=["intermediates"],
                              **call_kwargs)
    layers = _outputs_as_layers(out)
    for path, value in traverse_util.flatten_dict(state.get("intermediates", {})).items():
      name = "/".join(path[:-1])  # The last part is the method, "__call__".
      value = value[0] if isinstance(value, tuple) and len(value) == 1 else value
      if name and name not in layers and isinstance(value, jax.Array):
        layers[name] = value
    return layers

  return variables, layers_fn, capture_fn


def _pretrained_source(config):
  """(variables, layers_fn, None) of the ImageNet backbone of `config.pretrained`."""
  net = backbone.load(config.pretrained)
  return net.variables, net.extract, None


def _pixels_source():
  return {}, lambda v, x: {"pixels": x.reshape(x.shape[0], -1)}, None


def _pool(a, pool: str):
  a = a.astype(jnp.float32)
  if a.ndim == 4 and pool == "mean":
    return a.mean(axis=(1, 2))
  return a.reshape(a.shape[0], -1)


def _distinct_names(layers: dict) -> list[str]:
  """Names of `layers`, an array returned under several names counted once (call in a trace)."""
  names, seen = [], []
  for name, value in layers.items():
    if not any(value is s for s in seen):
      names.append(name)
      seen.append(value)
  return names


def make(config, input_shape: tuple[int, ...]) -> base.Method:
  """Builds the Gaussian scorer for inputs of shape `input_shape` (no batch axis)."""
  gaussian_config.check(config)  # The checks that need no input shape.
  cfg = config.gaussian
  input_shape = tuple(input_shape)
  if cfg.features == "pixels":
    variables, layers_fn, capture_fn = _pixels_source()
  elif cfg.features == "workdir":
    variables, layers_fn, capture_fn = _workdir_source(cfg, input_shape)
  elif cfg.features == "pretrained":
    if len(input_shape) != 3 or input_shape[-1] not in (1, 3):
      raise ValueError(f"gaussian.features='pretrained' needs images (H, W, 1 or 3); got inputs "
                       f"of shape {input_shape}.")
    variables, layers_fn, capture_fn = _pretrained_source(config)
  else:
    variables, layers_fn, capture_fn = _flax_file_source(cfg, input_shape)

  # Resolve the layer names and sizes once, from shapes only.
  example = jax.ShapeDtypeStruct((2,) + input_shape, jnp.float32)
  found = {}

  def discover(fn):
    def run(v, x):
      layers = fn(v, x)
      found["names"], found["distinct"] = list(layers), _distinct_names(layers)
      return {k: _pool(a, cfg.pool) for k, a in layers.items()}
    return jax.eval_shape(run, variables, example)

  shapes = discover(layers_fn)
  names = tuple(cfg.layers) or tuple(found["distinct"])
  if any(n not in shapes for n in names) and capture_fn is not None:
    layers_fn = capture_fn
    shapes = discover(layers_fn)
  unknown = [n for n in names if n not in shapes]
  if unknown:
    raise ValueError(f"Unknown layer(s) {', '.join(map(repr, unknown))} in gaussian.layers; "
                     f"the {cfg.features!r} features have: {', '.join(found['names'])}.")
  if not names:
    raise ValueError("gaussian.layers: the feature net returns no layers.")
  dims = [int(shapes[n].shape[1]) for n in names]
  for name, dim in zip(names, dims):
    if dim > cfg.max_features:
      raise ValueError(f"Layer {name!r} has {dim} features, more than gaussian.max_features="
                       f"{cfg.max_features} (its covariance is {dim} x {dim}); choose a smaller "
                       "layer (gaussian.layers), pool it (gaussian.pool='mean') or raise the "
                       "limit.")
  if not 0 <= cfg.select_levels <= len(names):
    raise ValueError(f"gaussian.select_levels={cfg.select_levels}: the features have "
                     f"{len(names)} layer(s) ({', '.join(names)}); choose 0 (all) to {len(names)}.")
  squared = bool(cfg.squared)
  score_names = [f"score_{re.sub(r'[^A-Za-z0-9_]+', '_', n)}" for n in names]

  def features(v, x):
    """The chosen layers' features, (N, D_i) float32 each."""
    layers = layers_fn(v, x.astype(jnp.float32))
    return [_pool(layers[n], cfg.pool) for n in names]

  def init(key, batch):
    del key, batch  # Nothing random; the sizes are known.
    return {"step": jnp.zeros((), jnp.int32),
            "net": jax.tree_util.tree_map(jnp.asarray, variables),
            "stats": {f"layer{i}": {"mean": jnp.zeros((d,), jnp.float32),
                                    "whitening": jnp.eye(d, dtype=jnp.float32)}
                      for i, d in enumerate(dims)},
            "fitted": jnp.zeros((), jnp.float32),
            "level_weights": jnp.ones((len(names),), jnp.float32),
            # -1: not measured (finite, as every leaf of a checkpointed state must be).
            "selection_auroc": jnp.full((len(names),), -1.0, jnp.float32)}

  def extract_all(net, x, what):
    """Every chosen layer's features of `x`, float64 (N, D_i), in padded fixed-size batches."""
    extract = jax.jit(features)
    progress = run_outputs.Progress(len(x), unit="image" if x.ndim == 4 else "row",
                                  label=f"gaussian fit: features of {what}")
    chunks, done = [], 0
    for batch, n in base.padded_batches(x, config.eval.batch_size):
      chunks.append([np.asarray(f)[:n] for f in extract(net, batch)])
      done += n
      progress.update(done)
    return [np.concatenate([c[i] for c in chunks]).astype(np.float64) for i in range(len(names))]

  def select(stats, net, val_x):
    """(level_weights, selection_auroc): the k layers that best flag CutPaste copies of val_x."""
    k = int(cfg.select_levels)
    if len(val_x) < 8:
      raise ValueError(f"gaussian.select_levels={k} ranks layers on the validation normals; "
                       f"there are {len(val_x)} (fewer than 8): raise data.val_fraction or set "
                       "gaussian.select_levels=0.")
    copies, _ = synthetic.cutpaste(val_x, np.random.default_rng(int(config.seed)))
    labels = np.r_[np.zeros(len(val_x)), np.ones(len(copies))]
    aurocs = []
    for i, (f_val, f_copy) in enumerate(zip(extract_all(net, val_x, "the validation normals"),
                                            extract_all(net, copies, "their CutPaste copies"))):
      s = jax.tree_util.tree_map(np.asarray, stats[f"layer{i}"])
      dist = np.linalg.norm((np.r_[f_val, f_copy] - s["mean"]) @ s["whitening"], axis=1)
      # A layer whose distances are all equal tells nothing apart: chance.
      aurocs.append(metrics.auroc(labels, dist) if np.ptp(dist) > 0 else 0.5)
    keep = np.argsort(-np.asarray(aurocs), kind="stable")[:k]
    logging.info("gaussian.select_levels=%d: CutPaste AUROC on %d validation normals %s; "
                 "keeping %s.", k, len(val_x),
                 ", ".join(f"{n} {a:.3f}" for n, a in zip(names, aurocs)),
                 ", ".join(names[i] for i in sorted(keep)))
    weights = np.zeros(len(names), np.float32)
    weights[keep] = 1.0
    return jnp.asarray(weights), jnp.asarray(aurocs, jnp.float32)

  def fit(state, train_x, val_x=None):
    train_x = np.asarray(train_x, np.float32)
    if train_x.shape[1:] != input_shape:
      raise ValueError(f"fit: training inputs of shape {train_x.shape[1:]}, the scorer was "
                       f"built for {input_shape}.")
    if len(train_x) < 2:
      raise ValueError(f"fit: a covariance needs >= 2 training samples; got {len(train_x)}.")
    stats, layers = {}, extract_all(state["net"], train_x, "the training split")
    progress = run_outputs.Progress(len(names), unit="layer",
                                  label="gaussian fit: covariances and whitenings")
    for i, (name, feats) in enumerate(zip(names, layers)):
      if not np.all(np.isfinite(feats)):
        raise ValueError(f"fit: layer {name!r} has non-finite features on the training data.")
      estimator = covariance.LedoitWolf(store_precision=False).fit(feats)
      # Precision = V diag(1 / eigvals) V^T from one eigendecomposition of the
      # covariance, by numpy's divide-and-conquer eigh: the scipy pinvh sklearn
      # calls for `precision_` took 56 s against 8 s for 4,096 features (64x64 pixels).
      eigvals, eigvecs = np.linalg.eigh(estimator.covariance_)
      keep = eigvals > eigvals.max() * len(eigvals) * np.finfo(eigvals.dtype).eps  # pinvh's cutoff.
      inv_sqrt = np.zeros_like(eigvals)
      inv_sqrt[keep] = 1.0 / np.sqrt(eigvals[keep])
      stats[f"layer{i}"] = {
          "mean": jnp.asarray(estimator.location_, jnp.float32),
          "whitening": jnp.asarray(eigvecs * inv_sqrt, jnp.float32)}
      progress.update(i + 1)
    state = dict(state, stats=stats, fitted=jnp.ones((), jnp.float32))
    if cfg.select_levels > 0 and len(names) > 1:
      val_x = np.zeros((0,) + input_shape, np.float32) if val_x is None else val_x
      weights, aurocs = select(stats, state["net"], np.asarray(val_x, np.float32))
      state.update(level_weights=weights, selection_auroc=aurocs)
    return state

  def score(state, batch, key):
    del key
    terms = []
    for i, f in enumerate(features(state["net"], batch)):
      s = state["stats"][f"layer{i}"]
      white = jnp.matmul(f - s["mean"], s["whitening"], precision=jax.lax.Precision.HIGHEST)
      d2 = jnp.sum(jnp.square(white), axis=1)
      terms.append(d2 if squared else jnp.sqrt(d2))
    # where, not w * t: an unselected layer's inf distance must not make NaN.
    total = sum(jnp.where(w > 0, t, 0.0) for w, t in zip(state["level_weights"], terms))
    total = jnp.where(state["fitted"] > 0, total, jnp.nan)
    outputs = {"score": total}
    if len(terms) > 1:
      outputs.update(zip(score_names, terms))
    return outputs

  return base.Method(init, None, score, fit)
