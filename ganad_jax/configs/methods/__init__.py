"""The methods' parts of the config, each registered by its method's config module.

A method's config module (`configs/methods/<name>.py`, beside the method's
`ganad_jax/methods/<name>.py`; here so that reading a config imports no JAX)
holds its sections' defaults and exports `METHODS = {name: spec.Spec(...)}`:
the dotted paths of the sections it reads, with their defaults' factories, and
the check of their values. A config holds the shared sections and only its
own method's (`schema.base_config(method)`); a field of another method's
section is refused by `schema.validate`, and skipped when an old config.json
(which held every method's sections) is read back (`schema.from_dict`).
"""

import ml_collections

from ganad_jax.configs.methods import ae
from ganad_jax.configs.methods import anogan
from ganad_jax.configs.methods import cflow
from ganad_jax.configs.methods import csflow
from ganad_jax.configs.methods import differnet
from ganad_jax.configs.methods import egbad
from ganad_jax.configs.methods import fanogan
from ganad_jax.configs.methods import fastflow
from ganad_jax.configs.methods import ganomaly
from ganad_jax.configs.methods import gaussian
from ganad_jax.configs.methods import msflow
from ganad_jax.configs.methods import padim
from ganad_jax.configs.methods import patchcore
from ganad_jax.configs.methods import skip_ganomaly
from ganad_jax.configs.methods import spec
from ganad_jax.configs.methods import vae

Spec = spec.Spec
REGISTRY: dict[str, Spec] = {**ae.METHODS, **anogan.METHODS, **cflow.METHODS, **csflow.METHODS,
                             **differnet.METHODS, **egbad.METHODS, **fanogan.METHODS,
                             **fastflow.METHODS, **gaussian.METHODS, **msflow.METHODS,
                             **padim.METHODS, **patchcore.METHODS, **vae.METHODS,
                             **ganomaly.METHODS, **skip_ganomaly.METHODS}
NAMES = tuple(sorted(REGISTRY))


def get(method: str) -> Spec:
  """The registration of `method`.

  Raises:
    ValueError: an unknown method, naming it and the methods there are.
  """
  if method not in REGISTRY:
    raise ValueError(f"Unknown method {method!r} (config.method); "
                     f"choose one of {', '.join(NAMES)}.")
  return REGISTRY[method]


def add_sections(config: ml_collections.ConfigDict, method: str) -> None:
  """Adds `method`'s sections at their defaults to `config`, in place (parents as needed)."""
  for path, factory in get(method).sections.items():
    *parents, name = path.split(".")
    node = config
    for parent in parents:
      if parent not in node:
        node[parent] = ml_collections.ConfigDict()
      node = node[parent]
    node[name] = factory()


def _under(name: str, path: str) -> bool:
  return name == path or name.startswith(path + ".")


def owners(name: str) -> list[str]:
  """The methods with a section that holds the dotted field or section `name`, sorted."""
  return sorted(m for m, s in REGISTRY.items() if any(_under(name, p) for p in s.sections))


def is_foreign(name: str, method: str) -> bool:
  """Whether the dotted `name` lies in another method's section and in none of `method`'s.

  "padim.eps" is foreign to "ae"; "anogan.lam" is foreign to "egbad", which
  reads `anogan.search` only; "anogan" itself is not (it holds egbad's part).
  """
  own = get(method).sections
  return bool(owners(name)) and not any(_under(name, p) or _under(p, name) for p in own)
