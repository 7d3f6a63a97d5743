"""Shared test setup: 8 CPU devices, and one XLA compilation cache for the session.

The devices are set before any test module initialises a JAX backend, through the environment
so that the subprocesses the tests start (experiments/*.py) get the same 8
devices: XLA:CPU splits some convolutions into as many parallel tasks as its
thread pool allows, which depends on the device count, so a run only repeats
another bit for bit under the same count. Runs use one device unless their
config asks for more (`config.mesh.devices`: auto is 1 on a single-process
CPU), so the rest of the suite compiles and runs as it would with one device.
The 8 are for the sharding tests, which need a mesh to split over.

The fixtures below them serve test files in several folders: finished runs
of configs/test.py trained once a session (tests that change a run work on a
`copy_of` it), random backbone weights and a per-test weights cache.
Subprocess and SIGKILL helpers for the script tests are in tests/harness.py;
plain helper functions in tests/helpers.py. tests/ and the repo root are on
sys.path (pytest.ini's `pythonpath`): test files import `harness`, `helpers`
and `configs` from any subfolder.
"""

import os
import shutil

os.environ["JAX_NUM_CPU_DEVICES"] = "8"

# pylint: disable=g-import-not-at-top,wrong-import-position
import jax

jax.config.update("jax_num_cpu_devices", 8)  # Before anything below creates an array.

from jax.experimental.compilation_cache import compilation_cache as xla_cache
import numpy as np
import pytest
from safetensors import numpy as safetensors_numpy

from ganad_jax import pretrained
from ganad_jax import runner
from ganad_jax import train
from ganad_jax.methods import backbone
from configs import test as test_config
import helpers
# pylint: enable=g-import-not-at-top,wrong-import-position


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


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
  """A finished 6-step run of configs/test.py (`helpers.tiny_config()`): the workdir tests copy."""
  workdir = str(tmp_path_factory.mktemp("trained"))
  train.train_and_evaluate(helpers.tiny_config(), workdir)
  return workdir


@pytest.fixture(scope="session")
def long_run(tmp_path_factory):
  """One run of helpers.LONG_STEPS steps, never interrupted: the reference of the resume tests."""
  workdir = str(tmp_path_factory.mktemp("uninterrupted"))
  train.train_and_evaluate(helpers.long_config(), workdir)
  # max_checkpoints = 2.
  assert helpers.checkpoint_steps(workdir) == [helpers.LONG_STEPS - helpers.LONG_EVERY,
                                               helpers.LONG_STEPS]
  return workdir


@pytest.fixture(scope="session")
def ensemble_workdir(tmp_path_factory):
  """(workdir, results) of a finished ensemble of configs/test.py: 2 seeds x 2 learning rates."""
  config = test_config.get_config()
  config.ensemble.seeds = (0, 1)
  config.ensemble.grid = (("optim.lr", (2e-4, 2e-2)),)
  workdir = str(tmp_path_factory.mktemp("ensemble") / "run")
  results = train.train_and_evaluate(config, workdir)
  return workdir, results


@pytest.fixture(scope="session")
def ae_ensemble_run(tmp_path_factory):
  """(workdir, results) of `helpers.ae_ensemble_config()`, never interrupted."""
  workdir = str(tmp_path_factory.mktemp("uninterrupted"))
  return workdir, train.train_and_evaluate(helpers.ae_ensemble_config(), workdir)


@pytest.fixture
def copy_of(tmp_path):
  """copy(workdir, name="copy") -> a copy of `workdir` at tmp_path / name."""
  def copy(workdir, name="copy"):
    dst = str(tmp_path / name)
    shutil.copytree(workdir, dst)
    return dst
  return copy


@pytest.fixture
def no_training(monkeypatch):
  """Fails the test if a train step is built (a refusal must come before any work)."""
  def refuse(*args, **kwargs):
    raise AssertionError("training started instead of refusing")
  monkeypatch.setattr(runner, "make_train_step", refuse)


@pytest.fixture(scope="session")
def backbone_weights(tmp_path_factory):
  """Random Lite0 and ResNet-18 state dicts in torch layout, as safetensors files."""
  rng = np.random.default_rng(0)
  paths = {}
  for name in ("efficientnet-lite0", "resnet18"):
    module = backbone._module(name)  # pylint: disable=protected-access
    state = {}
    for key, shape in pretrained.torch_names(module).items():
      if key.endswith("running_var"):
        state[key] = rng.uniform(1.0, 2.0, shape).astype(np.float32)
      else:
        state[key] = (rng.normal(size=shape) * 0.1).astype(np.float32)
    paths[name] = str(tmp_path_factory.mktemp("weights") / f"{name}.safetensors")
    safetensors_numpy.save_file(state, paths[name])
  return paths


@pytest.fixture
def weights_cache(tmp_path, monkeypatch):
  """A fresh converted-weights cache for the test ($GANAD_JAX_CACHE)."""
  monkeypatch.setenv("GANAD_JAX_CACHE", str(tmp_path / "cache"))
