"""ganad_jax: deep anomaly detection with generative models in JAX/Flax.

Importing the package imports no JAX (the config schema, `ganad_jax.configs`,
needs only ml_collections), but it fixes JAX's random-number implementation
for the whole process before any ganad_jax module can draw a random number.
"""

import os
import sys

# XLA:CPU compiles the partitionable threefry (JAX's default since 0.5) 10-20x
# slower: initialising a small DCGAN took 17 s instead of 1.6 s on a 2-core
# CPU. The classic threefry gives the same numbers on one device and under any
# sharding, so runs stay deterministic; only the random streams differ from
# JAX's default. Every ganad_jax module is imported after this package, so
# setting it here covers them all: if JAX is not imported yet, through the
# variable JAX reads its default from when it is (so `import ganad_jax` and
# reading a config file stay free of JAX); if it is, directly.
if "jax" in sys.modules:
  sys.modules["jax"].config.update("jax_threefry_partitionable", False)
else:
  os.environ["JAX_THREEFRY_PARTITIONABLE"] = "false"


def __getattr__(name):
  # `ganad_jax.Detector` is imported on first use, so `import ganad_jax` stays light.
  if name == "Detector":
    from ganad_jax import detector  # pylint: disable=g-import-not-at-top
    return detector.Detector
  raise AttributeError(f"module 'ganad_jax' has no attribute {name!r}")
