"""Registry of anomaly detection methods (see `base.py` for the interface).

Each name maps to its module's `make(config, input_shape)`; the config
sections a method reads, and the checks of their values that need no input
shape (`Spec.check`, run by `configs.validate` and by the method's `make`),
are registered by its config module (`ganad_jax/configs/methods/<name>.py`,
which imports no JAX), and the two registries hold the same names.
"""

import functools

from ganad_jax.methods import ae
from ganad_jax.methods import anogan
from ganad_jax.methods import backbone
from ganad_jax.methods import base
from ganad_jax.methods import cflow
from ganad_jax.methods import csflow
from ganad_jax.methods import differnet
from ganad_jax.methods import egbad
from ganad_jax.methods import fanogan
from ganad_jax.methods import fastflow
from ganad_jax.methods import gaussian
from ganad_jax.methods import msflow
from ganad_jax.methods import padim
from ganad_jax.methods import patchcore
from ganad_jax.methods import vae
from ganad_jax.methods import ganomaly
from ganad_jax.methods import skip_ganomaly
from ganad_jax.xla_cpu import fast_conv

_REGISTRY = {
    "ae": functools.partial(ae.make, loss="l2"),
    "ssim_ae": functools.partial(ae.make, loss="ssim"),
    "anogan": anogan.make,
    "cflow": cflow.make,
    "csflow": csflow.make,
    "differnet": differnet.make,
    "egbad": egbad.make,
    "fanogan": fanogan.make,
    "fastflow": fastflow.make,
    "gaussian": gaussian.make,
    "msflow": msflow.make,
    "padim": padim.make,
    "patchcore": patchcore.make,
    "vae": vae.make,
    "ganomaly": ganomaly.make,
    "skip_ganomaly": skip_ganomaly.make,
}

NAMES = tuple(sorted(_REGISTRY))

# Methods that compute with the pretrained backbone of `config.pretrained`, when.
_USES_BACKBONE = {
    "padim": lambda config: True,
    "patchcore": lambda config: True,
    "fastflow": lambda config: True,
    "cflow": lambda config: True,
    "msflow": lambda config: True,
    "csflow": lambda config: True,
    "differnet": lambda config: True,
    "gaussian": lambda config: config.gaussian.features == "pretrained",
}


def weights_record(config) -> dict | None:
  """`backbone.weights_record` of the run's pretrained weights; None if it uses none.

  Raises:
    ValueError: as `backbone.weights_record` (no weights, a bad normalisation).
  """
  uses = _USES_BACKBONE.get(config.method)
  return backbone.weights_record(config.pretrained) if uses and uses(config) else None


def make(config, input_shape: tuple[int, ...]) -> base.Method:
  """Builds the method `config.method` for inputs of shape `input_shape` (no batch axis).

  Args:
    config: an experiment config.
    input_shape: one example's shape, (H, W, C) or (F,).

  Raises:
    ValueError: an unknown method, or (from the method's make) inputs or
      settings it cannot take, naming the field.
  """
  if config.method not in _REGISTRY:
    raise ValueError(f"Unknown method {config.method!r} (config.method); "
                     f"choose one of {', '.join(NAMES)}.")
  method = _REGISTRY[config.method](config, tuple(input_shape))
  if not fast_conv.use_lowering(config.conv_lowering):
    return method
  lowered = lambda fn: None if fn is None else fast_conv.lowered(fn)
  return method._replace(init=lowered(method.init), train_step=lowered(method.train_step),
                         score=lowered(method.score), fit=lowered(method.fit),
                         generate=lowered(method.generate), embed=lowered(method.embed),
                         paper_score=method.paper_score and method.paper_score._replace(
                             score=lowered(method.paper_score.score)))
