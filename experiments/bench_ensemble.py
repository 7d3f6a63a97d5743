r"""Training throughput of a K-seed ensemble in one program vs K separate sequential runs.

  python experiments/bench_ensemble.py --methods=ganomaly,anogan --ks=1,2,4,8 \
      --image_size=32 --channels=1 --batch=64 --base_features=64 --nz=100 \
      --json_out=/tmp/bench_ensemble.json

For each method, times the trainer's own jitted step (`runner.step_function`:
every member gathers its batch from the device-resident training set, then the
stacked `train_step` runs, per "members" shard of the mesh) of a K-seed
ensemble (`config.ensemble.seeds = 0..K-1`) on random images in [-1, 1]:
`--steps` steps after a compiling warm-up step, best of `--repeats`. Images/s
are summed over members: K * batch * steps / seconds.

"K sequential runs" trains the same K members one after another with the
single-run step (no ensemble): K times the images in K times the time, so
their total images/s is that of one single run, measured once per method.
The speed-up is one program's images/s over that. Compile times (warm-up step
minus a timed step) are reported apart: one program compiles once, K runs
compile K times (or hit the compilation cache). Every entry also has XLA's
FLOPs per step and the achieved GFLOP/s; the single runs' share of the fp32
matmul peak measured in the same run bounds what batching members can gain.
"""

import json
import time

from absl import flags
import jax
import numpy as np

from ganad_jax import cli
from ganad_jax import configs
from ganad_jax import profiling
from ganad_jax import result_tables
from ganad_jax import run_outputs
from ganad_jax import runner
from ganad_jax import sharding

_METHODS = flags.DEFINE_list("methods", ["ganomaly", "anogan"],
                             "Methods to time (AnoGAN's train step is its DCGAN).")
_KS = flags.DEFINE_list("ks", ["1", "2", "4", "8"], "Ensemble sizes (seeds in one program).")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 32, "Image side (a power of two >= 16).")
_CHANNELS = flags.DEFINE_integer("channels", 1, "Image channels.")
_BATCH = flags.DEFINE_integer("batch", 64, "Batch size per member.")
_BASE = flags.DEFINE_integer("base_features", 64, "config.model.base_features.")
_NZ = flags.DEFINE_integer("nz", 100, "config.model.nz.")
_STEPS = flags.DEFINE_integer("steps", 10, "Timed steps per repeat.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Repeats; the best is reported.")
_NUM_TRAIN = flags.DEFINE_integer("num_train", 1024, "Random training images on the device.")
_DEVICES = flags.DEFINE_integer("devices", 0, "config.mesh.devices (0 = auto).")
_DTYPE = flags.DEFINE_string("compute_dtype", "float32", "config.compute_dtype.")
_LOWERING = flags.DEFINE_string("conv_lowering", "auto", "config.conv_lowering.")
_BATCHING = flags.DEFINE_string("batching", "auto", "config.ensemble.batching (vmap, unroll).")
_JSON_OUT = flags.DEFINE_string("json_out", None, "Write the numbers to this JSON file.")


def _config(method: str, k: int | None):
  config = configs.base_config(method)
  config.model.nz, config.model.base_features = _NZ.value, _BASE.value
  config.train.batch_size = _BATCH.value
  config.eval.batch_size = _BATCH.value
  config.mesh.devices = _DEVICES.value
  config.compute_dtype = _DTYPE.value
  config.conv_lowering = _LOWERING.value
  config.ensemble.batching = _BATCHING.value
  if k is not None:
    config.ensemble.seeds = tuple(range(k))
  return config


def time_step(method: str, k: int | None) -> dict:
  """Images/s (summed over members) of the train step of `k` members (None: a single run)."""
  shape = (_IMAGE_SIZE.value, _IMAGE_SIZE.value, _CHANNELS.value)
  x = np.random.default_rng(0).uniform(-1, 1, (_NUM_TRAIN.value, *shape)).astype(np.float32)
  run = runner.build(_config(method, k), shape, len(x))
  train_x = sharding.put_train_data(run.mesh, x, "replicated")
  batch = sharding.put(run.mesh, x[:run.batch_size])
  _, state_sharding = runner.abstract_init(run, batch)
  state = runner.init_state(run, batch, state_sharding)
  step = runner.step_function(run, state_sharding, train_x.sharding, len(x))
  _, data_key, step_key, _ = run.keys
  with jax.set_mesh(run.mesh):
    flops = profiling.compiled_flops(step, state, train_x, data_key, step_key)
    t0 = time.perf_counter()
    state, metrics = step(state, train_x, data_key, step_key)
    jax.block_until_ready(metrics)
    first = time.perf_counter() - t0
    best = float("inf")
    for _ in range(_REPEATS.value):
      t0 = time.perf_counter()
      for _ in range(_STEPS.value):
        state, metrics = step(state, train_x, data_key, step_key)
      jax.block_until_ready(metrics)
      best = min(best, time.perf_counter() - t0)
  members = run.num_members
  losses = np.asarray(jax.device_get(metrics["loss"])).reshape(-1)
  if not np.all(np.isfinite(losses)):
    raise FloatingPointError(f"{method} K={k}: non-finite loss {losses}.")
  return {"members": members, "images_per_s": members * run.batch_size * _STEPS.value / best,
          "step_s": best / _STEPS.value, "compile_s": max(first - best / _STEPS.value, 0.0),
          "flops_per_step": flops, "achieved_gflops": flops * _STEPS.value / best / 1e9,
          "mesh": dict(run.mesh.shape)}


def main(argv):
  del argv
  ks = [int(k) for k in _KS.value]
  results = {"settings": {"image_size": _IMAGE_SIZE.value, "channels": _CHANNELS.value,
                          "batch": _BATCH.value, "base_features": _BASE.value, "nz": _NZ.value,
                          "steps": _STEPS.value, "repeats": _REPEATS.value,
                          "compute_dtype": _DTYPE.value, "conv_lowering": _LOWERING.value,
                          "batching": _BATCHING.value},
             "devices": f"{jax.device_count()} x {jax.devices()[0].device_kind}",
             "jax_version": jax.__version__, "methods": {}}
  rows = []
  peaks = [profiling.matmul_peak()["gflops"]]
  for method in _METHODS.value:
    single = time_step(method, None)
    entry = {"single_run": single, "ensembles": {}}
    for k in ks:
      one = time_step(method, k)
      one["speedup_vs_sequential"] = one["images_per_s"] / single["images_per_s"]
      entry["ensembles"][str(k)] = one
      rows.append([method, k, f"{one['images_per_s']:.1f}", f"{single['images_per_s']:.1f}",
                   f"{one['speedup_vs_sequential']:.2f}x", f"{one['compile_s']:.1f}",
                   f"{k * single['compile_s']:.1f}"])
    results["methods"][method] = entry
  peaks.append(profiling.matmul_peak()["gflops"])
  # How busy one single run already keeps the machine: the most an ensemble can gain
  # over sequential runs on a compute-bound CPU is about 1 / this.
  results["matmul_peak_gflops"] = max(peaks)
  for entry in results["methods"].values():
    entry["single_run"]["achieved_over_peak"] = (entry["single_run"]["achieved_gflops"]
                                                 / max(peaks))
  print(result_tables.markdown_table(
      ["method", "K", "one program img/s", "K sequential runs img/s", "speed-up",
       "compile s (one)", "compile s (K runs)"], rows))
  if _JSON_OUT.value:
    run_outputs.write_json(_JSON_OUT.value, results)
    print(json.dumps(results["settings"]))


if __name__ == "__main__":
  cli.run_main(main)
