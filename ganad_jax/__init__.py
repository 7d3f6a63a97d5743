"""ganad_jax: deep anomaly detection with generative models in JAX/Flax."""

import jax

# XLA:CPU compiles the partitionable threefry (JAX's default since 0.5) 10-20x
# slower: initialising a small DCGAN took 17 s instead of 1.6 s on a 2-core
# CPU. The classic threefry gives the same numbers on one device and under any
# sharding, so runs stay deterministic; only the random streams differ from
# JAX's default.
jax.config.update("jax_threefry_partitionable", False)


def __getattr__(name):
  # `ganad_jax.Detector` is imported on first use, so `import ganad_jax` stays light.
  if name == "Detector":
    from ganad_jax import detector  # pylint: disable=g-import-not-at-top
    return detector.Detector
  raise AttributeError(f"module 'ganad_jax' has no attribute {name!r}")
