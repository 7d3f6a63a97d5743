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
from jax.experimental.compilation_cache import compilation_cache as xla_cache  # pylint: disable=g-import-not-at-top,wrong-import-position
import pytest  # pylint: disable=g-import-not-at-top,wrong-import-position

jax.config.update("jax_num_cpu_devices", 8)


@pytest.fixture(scope="module")
def shared_compilation_cache(tmp_path_factory):
  """Compiles each init / step / score function once for the whole module, not once per run.

  For modules that start many tiny runs (`pytestmark = pytest.mark.usefixtures(...)`).

  XLA:CPU compiles are the bulk of a tiny run; later runs, in this process and in
  the subprocesses of the kill-and-resume test, load the executables from here.
  """
  names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")
  before = {name: getattr(jax.config, name) for name in names}
  path = str(tmp_path_factory.mktemp("xla_cache"))
  jax.config.update(names[0], path)
  jax.config.update(names[1], 0)
  xla_cache.reset_cache()
  yield {name.upper(): str(value) for name, value in zip(names, (path, 0))}
  for name, value in before.items():
    jax.config.update(name, value)
  xla_cache.reset_cache()

