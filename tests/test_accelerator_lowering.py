"""Every jitted program of every method lowers for CUDA and TPU (`jax.export`), on this CPU.

No accelerator is needed: `jax.export.export(jitted, platforms=("cuda", "tpu"))`
traces a program and lowers it to one StableHLO module for both platforms
without compiling it, so a program that uses a CPU-only construct, or that
no accelerator backend can lower, fails here. Each method of `methods.NAMES`
(a new one is covered by adding it to the registry) is built as a run on an
accelerator would build it, through the run layer (`runner`), twice:

  single:       one device, whole 16 x 16 images: init, the train step
                (`runner.step_function`), score (`scoring.Scorer`: AnoGAN's
                is the latent search, EGBAD's adds the encoder-warm-started
                one), the jitted program a closed-form `fit` runs, the
                paper-protocol score and `generate`.
  distributed:  a 2-seed ensemble (stacked, vmapped as on an accelerator)
                on 8 devices (tests/conftest.py fakes 8 CPU devices; mesh
                members 2 x data 4, training rows sharded) with the patch
                protocol (16 x 16 crops of 32 x 32 images): the train step
                or the tiled fit, and the stacked score of a batch of tiles.
                One setting for all three wrappers keeps the file's time
                down; each of them is the code path of the simpler settings.

"As an accelerator would build it": every backend decision of the code
base (`fast_conv.use_lowering`, `ensemble._batching`, the latent search's
chunk size, the mesh's device count) reads `jax.default_backend()`, which
the tests make answer "gpu". A GPU or TPU run of `conv_lowering="auto"` then
gets XLA's own convolutions: the modules must hold `stablehlo.convolution`
ops and no op whose source location lies in the CPU rewrite of
`fast_conv.lowered`. `test_the_cpu_rewrite_is_visible_in_the_text` shows that
check can fail: the CPU build of the same program has such ops.

PaDiM (and any method that reads `config.pretrained`) uses the random
Lite0 weights of the `backbone_weights` fixture: no torch, no download.
"""

import contextlib
import inspect
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganad_jax import methods
from ganad_jax import paper_repro
from ganad_jax import runner
from ganad_jax import scoring
from ganad_jax import sharding
from ganad_jax.xla_cpu import fast_conv
from configs import test as test_config

PLATFORMS = ("cuda", "tpu")
SHAPE = (16, 16, 1)  # configs/test.py's images.
PATCH_SHAPE = (32, 32, 1)  # Tiled into 16 x 16 crops, the DCGAN nets' smallest input.
NUM_TRAIN = 40
VARIANTS = ("single", "distributed")

# The weights are converted into a fresh cache per test (the backbone's methods).
pytestmark = pytest.mark.usefixtures("weights_cache")


@pytest.fixture
def accelerator_backend(monkeypatch):
  """`jax.default_backend()` answers "gpu" (what every backend decision reads).

  JAX's trace caches are cleared first: a program traced by an earlier test on
  the CPU (with the CPU convolution rewrite) must not be reused here.
  """
  jax.clear_caches()
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")


def _config(method: str, variant: str, weights: dict[str, str]):
  """configs/test.py for `method` in `variant`, on the fixture's random Lite0 weights."""
  config = test_config.get_config(f"method={method}")  # Its own method's sections only.
  if "egbad" in config:
    config.egbad.search_steps = 2  # EGBAD's score also runs the encoder-warm-started search.
  if "anogan" in config:
    config.anogan.search.steps = 2  # A scan: its length does not change the program.
  if "pretrained" in config:
    config.pretrained.backbone = "efficientnet-lite0"
    config.pretrained.weights = weights["efficientnet-lite0"]
    # The multi-scale flows halve the input twice; the backbones need >= 32 px.
    config.pretrained.input_size = 128 if config.method in ("csflow", "differnet") else 32
    config.pretrained.cache_dir = ""
  if variant == "single":
    config.mesh.devices = 1  # One accelerator ("auto" would take all 8 on a "gpu").
  else:
    config.mesh.devices, config.mesh.train_data = 8, "sharded"
    config.ensemble.seeds = (0, 1)
    config.data.image_size = PATCH_SHAPE[0]
    config.patch.size, config.patch.stride = 16, 16
  return config


class _StopAtFirstJit(Exception):
  pass


def _first_fit_program(fit, state, train_x):
  """(jitted, args) of the first jitted call `fit(state, train_x, train_x)` makes, or None.

  `jax.jit` is replaced while `fit` runs: its first call records the jitted
  function with its arguments and stops `fit`.
  """
  captured, real_jit = [], jax.jit

  def recording_jit(fn, *args, **kwargs):
    jitted = real_jit(fn, *args, **kwargs)

    def first_call(*call_args):
      captured.append((jitted, call_args))
      raise _StopAtFirstJit
    return first_call

  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(jax, "jit", recording_jit)
    with contextlib.suppress(_StopAtFirstJit):
      fit(state, train_x, train_x)
  return captured[0] if captured else None


def _programs(config, variant: str) -> tuple[runner.Run, dict]:
  """The run and its programs, {name: (jitted function, example arguments)}."""
  shape = SHAPE if variant == "single" else PATCH_SHAPE
  x = np.zeros((NUM_TRAIN, *shape), np.float32)
  run = runner.build(config, shape, NUM_TRAIN)
  train_x = sharding.put_train_data(run.mesh, x, config.mesh.train_data)
  abstract, state_sharding = runner.abstract_init(run, x[:run.batch_size])
  net_shape = shape if run.patch is None else (run.patch.size, run.patch.size, shape[2])
  # The patch protocol scores batches of tiles.
  score_batch = jax.ShapeDtypeStruct((config.eval.batch_size, *net_shape), jnp.float32)
  scorer = scoring.Scorer(run, config.eval.batch_size, state_sharding)
  programs = {"score": (scorer.program(abstract),
                        (abstract, score_batch, run.keys.score))}
  if run.method.train_step is not None:
    # A method with `embed`: the step embeds images (the program the patch
    # protocol and ensembles run; computed once, embed is its own program).
    programs["train_step"] = (runner.step_function(run, state_sharding, train_x.sharding,
                                                   NUM_TRAIN, run.method.embed is not None),
                              (abstract, train_x, run.keys.data, run.keys.step))
  if run.method.embed is not None and not run.stacked:  # What `train` runs once (single runs).
    programs["embed"] = (jax.jit(run.method.embed), (abstract, x[:config.eval.batch_size]))
  if run.method.fit is not None:  # What a closed-form fit runs on the device (tiled, stacked).
    zeros = jax.tree.map(lambda a: np.zeros(a.shape, a.dtype), abstract)
    programs["fit"] = _first_fit_program(run.method.fit, zeros, x)
  if variant == "single":
    programs["init"] = (jax.jit(run.method.init), (run.keys.init, x[:run.batch_size]))
    if run.method.paper_score is not None:
      paper = scoring.Scorer(run, config.eval.batch_size, state_sharding,
                             score=paper_repro.paper_score(run.method).score)
      programs["paper_score"] = (paper.program(abstract), (abstract, score_batch, run.keys.score))
    if run.method.generate is not None:
      z = jax.ShapeDtypeStruct((config.eval.batch_size, config.model.nz), jnp.float32)
      programs["generate"] = (jax.jit(run.method.generate), (abstract, z))
  return run, programs


def _count_convs():
  """(interceptor, counter): counts the flax Conv / ConvTranspose calls traced under it."""
  counter = {"convs": 0}

  def interceptor(next_fun, args, kwargs, context):
    if context.method_name == "__call__" and isinstance(context.module,
                                                        (nn.Conv, nn.ConvTranspose)):
      counter["convs"] += 1
    return next_fun(*args, **kwargs)
  return interceptor, counter


def _export(run, fn, args):
  """(StableHLO text of `fn` exported for PLATFORMS, flax convs traced); under the run's mesh."""
  interceptor, counter = _count_convs()
  with jax.set_mesh(run.mesh), nn.intercept_methods(interceptor):
    exported = jax.export.export(fn, platforms=PLATFORMS)(*args)
  assert exported.platforms == PLATFORMS
  assert exported.nr_devices == run.mesh.size
  return exported.mlir_module(), counter["convs"]


# The functions of fast_conv's straight-line rewrite (`lowered`), which only a
# CPU build of conv_lowering="auto" (or "cpu") runs: (first, last) source lines.
_CPU_REWRITE = (fast_conv.lowered, fast_conv._cpu_conv_interceptor, fast_conv.cpu_conv,  # pylint: disable=protected-access
                fast_conv._strided_conv_by_space_to_depth, fast_conv._depthwise_conv_by_shifts)  # pylint: disable=protected-access


def _line_range(fn) -> tuple[int, int]:
  lines, first = inspect.getsourcelines(fn)
  return first, first + len(lines) - 1


def cpu_rewrite_lines(text: str) -> list[int]:
  """Lines of `_CPU_REWRITE` that the module's source locations name (sorted, unique)."""
  path = re.escape(inspect.getsourcefile(fast_conv))
  named = {int(n) for n in re.findall(rf'"{path}":(\d+):', text)}
  ranges = [_line_range(fn) for fn in _CPU_REWRITE]
  return sorted(n for n in named if any(a <= n <= b for a, b in ranges))


def test_use_lowering_decides_by_platform(monkeypatch):
  for platform in ("gpu", "cuda", "rocm", "tpu"):
    assert not fast_conv.use_lowering("auto", platform)
    assert fast_conv.use_lowering("cpu", platform)  # Forced: still honoured.
  assert fast_conv.use_lowering("auto", "cpu")
  assert not fast_conv.use_lowering("xla", "cpu")
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")  # The default reads the backend.
  assert not fast_conv.use_lowering("auto")
  monkeypatch.setattr(jax, "default_backend", lambda: "cpu")
  assert fast_conv.use_lowering("auto")


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("method", methods.NAMES)
def test_programs_lower_for_cuda_and_tpu(method, variant, backbone_weights,
                                         accelerator_backend):  # pylint: disable=unused-argument
  config = _config(method, variant, backbone_weights)
  run, programs = _programs(config, variant)
  if variant == "distributed":
    assert run.num_members == 2 and run.patch is not None
    assert dict(run.mesh.shape) == {"members": 2, "data": 4}
  # Every method trains by gradient steps or is fitted in closed form on the device.
  assert ("train_step" in programs) != ("fit" in programs), sorted(programs)
  assert programs.get("fit", ()) is not None, f"{method}'s fit made no jitted call"
  for name, (fn, args) in programs.items():
    text, convs = _export(run, fn, args)
    # Init returns parameters only: the traced convs' outputs are dropped.
    if convs and name != "init":  # XLA's own convolutions, none rewritten for XLA:CPU.
      assert "stablehlo.convolution" in text, (method, variant, name)
    assert not cpu_rewrite_lines(text), (method, variant, name, cpu_rewrite_lines(text))


def test_the_cpu_rewrite_is_visible_in_the_text(backbone_weights):
  """On the CPU backend, conv_lowering="auto" rewrites GANomaly's convs, and the text shows it.

  The check above is not vacuous: the source locations of the exported module
  name the rewrite's lines when it ran, and the rewrite turns GANomaly's
  convs that are matmuls into dot_generals (fewer convolution ops than the
  program with conv_lowering="xla", which is what "auto" gives on a GPU).
  """
  texts = {}
  for lowering in ("auto", "xla"):
    config = _config("ganomaly", "single", backbone_weights)
    config.conv_lowering = lowering
    run, programs = _programs(config, "single")
    texts[lowering], convs = _export(run, *programs["train_step"])
    assert convs
  assert cpu_rewrite_lines(texts["auto"])
  assert not cpu_rewrite_lines(texts["xla"])
  count = lambda text: len(re.findall(r"= stablehlo\.convolution\(", text))
  assert 0 < count(texts["auto"]) < count(texts["xla"])
