"""ganad_jax: deep anomaly detection with generative models in JAX/Flax."""

import jax

# XLA:CPU compiles the partitionable threefry (JAX's default since 0.5) 10-20x
# slower: initialising a small DCGAN took 17 s instead of 1.6 s on a 2-core
# CPU. The classic threefry gives the same numbers on one device and under any
# sharding, so runs stay deterministic; only the random streams differ from
# JAX's default.
jax.config.update("jax_threefry_partitionable", False)
