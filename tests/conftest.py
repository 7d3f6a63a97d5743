"""Shared test setup: 8 CPU devices, and one XLA compilation cache for the session.

The devices are set before any test module initialises a JAX backend, through the environment
so that the subprocesses the tests start (experiments/*.py) get the same 8
devices: XLA:CPU splits some convolutions into as many parallel tasks as its
thread pool allows, which depends on the device count, so a run only repeats
another bit for bit under the same count. Runs use one device unless their
config asks for more (`config.mesh.devices`: auto is 1 on a single-process
CPU), so the rest of the suite compiles and runs as it would with one device.
The 8 are for the sharding tests, which need a mesh to split over.

Subprocess and SIGKILL helpers for the script tests are in tests/harness.py.
"""

import os

os.environ["JAX_NUM_CPU_DEVICES"] = "8"

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
from jax.experimental.compilation_cache import compilation_cache as xla_cache  # pylint: disable=g-import-not-at-top,wrong-import-position
import pytest  # pylint: disable=g-import-not-at-top,wrong-import-position

jax.config.update("jax_num_cpu_devices", 8)


@pytest.fixture(scope="session", autouse=True)
def shared_compilation_cache(tmp_path_factory):
  """One persistent XLA compilation cache for the whole session and its subprocesses.

  XLA:CPU compiles are the bulk of a tiny run, and most tests train or score
  the same configs/test.py programs: a program compiled once (in any test, or
  in a subprocess of a script test) is loaded from here afterwards, bit for bit
  the executable a fresh compile gives. The cache starts empty each session.

  Yields:
    The environment variables that give a subprocess (experiments/*.py) the
    same cache: {"JAX_COMPILATION_CACHE_DIR": path, ...} (str -> str).
  """
  settings = {
      "jax_compilation_cache_dir": str(tmp_path_factory.mktemp("xla_cache")),
      # Every program, however quick to compile or small: the tiny runs' are both.
      "jax_persistent_cache_min_compile_time_secs": 0,
      "jax_persistent_cache_min_entry_size_bytes": -1,
  }
  before = {name: getattr(jax.config, name) for name in settings}
  for name, value in settings.items():
    jax.config.update(name, value)
  xla_cache.reset_cache()
  yield {name.upper(): str(value) for name, value in settings.items()}
  for name, value in before.items():
    jax.config.update(name, value)
  xla_cache.reset_cache()
