"""What the flow methods (fastflow, cflow, msflow) share: backbone stages, embed, Adam.

Each flow method reads a frozen pretrained backbone (`config.pretrained`,
`methods/backbone.py`), picks some of its stages and trains flows on them;
`Method.embed` (`methods/base.py`) is the backbone's chosen stages, so the
runner can compute them once over the training split.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ganad_jax.methods import backbone
from ganad_jax.methods import base


def check_images(input_shape: tuple[int, ...], name: str) -> tuple[int, ...]:
  """`input_shape` as a tuple; ValueError unless it is an image (H, W, 1 or 3)."""
  input_shape = tuple(input_shape)
  if len(input_shape) != 3 or input_shape[-1] not in (1, 3):
    raise ValueError(f"{name} needs images (H, W, 1 or 3); got inputs of shape {input_shape}.")
  return input_shape


def load_stages(config, name: str, layers, defaults: dict[str, tuple[str, ...]]):
  """(backbone, stages): the backbone of `config.pretrained` and the stages `name` reads.

  Args:
    config: the experiment config.
    name: the method's section ("fastflow"), as messages name it.
    layers: the section's `layers`; () = `defaults[family]`, family
      "efficientnet" or "resnet".
    defaults: the method's reference stages per backbone family.

  Raises:
    ValueError: an unknown backbone or stage, naming the field.
    pretrained.WeightsError: no weights.
  """
  if config.pretrained.backbone not in backbone.NATIVE_SIZE:
    raise ValueError(f"pretrained.backbone={config.pretrained.backbone!r} is not one of "
                     f"{', '.join(backbone.NAMES)}.")
  family = "efficientnet" if config.pretrained.backbone.startswith("efficientnet-") else "resnet"
  layers = tuple(layers) or defaults[family]
  net = backbone.load(config.pretrained)
  unknown = [n for n in layers if n not in net.stages]
  if unknown:
    raise ValueError(f"{name}.layers: {', '.join(map(repr, unknown))} not among the stages of "
                     f"{net.name}: {', '.join(net.stages)}.")
  return net, layers


def make_embed(net, layers):
  """embed(state, x) -> {stage: (N, h, w, c) float32}: the frozen stages of the images x."""
  def embed(state, x):
    stages = net.extract(state["net"], x)
    return {n: stages[n] for n in layers}
  return embed


def example_features(net, layers) -> dict[str, np.ndarray]:
  """Zeros shaped as one image's features, {stage: (1, h, w, c)}: what flows are initialised on."""
  return {n: np.zeros((1, *net.stages[n]), np.float32) for n in layers}


def frozen(net) -> dict:
  """The backbone's variables as a state entry (jax arrays)."""
  return jax.tree_util.tree_map(jnp.asarray, net.variables)


def adam(config, weight_decay: float, clip_norm: float = 0.0) -> optax.GradientTransformation:
  """PyTorch's Adam(weight_decay): L2 on the gradient, then `base.adam(config.optim)`.

  clip_norm > 0: the gradients' global norm is clipped to it first (clip_grad_norm_).
  """
  parts = [optax.clip_by_global_norm(clip_norm)] if clip_norm > 0 else []
  if weight_decay > 0:
    parts.append(optax.add_decayed_weights(weight_decay))
  return optax.chain(*parts, base.adam(config.optim))
