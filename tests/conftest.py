"""Shared test setup: 8 CPU devices, so the sharding tests have a mesh to split over.

Set before any test module initialises a JAX backend, through the environment
so that the subprocesses the tests start (experiments/*.py) get the same 8
devices: XLA:CPU splits some convolutions into as many parallel tasks as its
thread pool allows, which depends on the device count, so a run only repeats
another bit for bit under the same count. Runs use one device unless their
config asks for more (`config.mesh.devices`: auto is 1 on a single-process
CPU), so the rest of the suite compiles and runs as it would with one device.
"""

import os

os.environ["JAX_NUM_CPU_DEVICES"] = "8"

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position

jax.config.update("jax_num_cpu_devices", 8)
