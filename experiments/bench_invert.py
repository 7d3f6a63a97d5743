r"""Benchmarks the batched AnoGAN latent search against a per-sample loop (and PyOD).

Images (the target: >= 50 % of the measured fp32 matmul peak, >= 2x the
per-sample loop):

  python experiments/bench_invert.py --image_size=32 --channels=1 --nz=100 \
      --base_features=64 --samples=1024 --steps=20 --json_out=/tmp/invert_image.json

Tabular, PyOD AnoGAN's default sizes (the target: >= 1000x PyOD's per-sample
query loop; PyOD runs in its own interpreter, e.g. a venv made with
`pip install torch==2.13.0 pyod`, and is never a dependency of ganad_jax):

  python experiments/bench_invert.py --features=20 --nz=2 --g_widths=20,10,3,10,20 \
      --d_widths=20,10,5 --samples=100000 --steps=20 --per_sample_samples=200 \
      --pyod --pyod_python=/work/bench_venv/bin/python --json_out=/tmp/invert_tabular.json

What is measured, in one process and one run:
  * batched: `latent_search.search` over all samples (chunks of --chunk_size),
    jitted once; the best of --repeats timed runs after a warm-up call.
  * per_sample: the same search jitted for one sample and called in a Python
    loop over the first --per_sample_samples samples (what the peers do, but
    compiled: fairer to them); best of --repeats.
  * Each repeat times (matmul peak, batched search, per-sample loop) in turn, so
    besides the best-over-best ratios the JSON has ratios between runs that are
    neighbours in time ("..._adjacent_peak", "..._paired"): on a shared machine
    whose load drifts, those are the fairer comparison.
  * flops_per_sample_step: XLA's cost analysis of one search step (loss and
    gradient through G and D) divided by the batch size. XLA counts only the
    taps that touch real (not padded) pixels, so this is a slight undercount.
  * matmul peak: the best GFLOP/s of a jitted fp32 --peak_size^2 matmul
    (--peak_repeats calls), before every repeat and after the last; the
    largest is the reference of "achieved_over_peak".
  * pyod (optional): PyOD's AnoGAN.fit with epochs=0 on --pyod_samples rows:
    training is skipped and the time is that of its per-sample query loop
    (epochs_query=--steps Adam steps per sample, one sample at a time). Its
    decision_function does not search at all (it reuses the z of the last
    training sample), so the fit-time loop is PyOD's only latent search.
The networks are untrained (random init): the cost of a search step does not
depend on the weights.
"""

import json
import os
import platform
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags
from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from ganad_jax import cli
from ganad_jax import configs
from ganad_jax import latent_search
from ganad_jax import profiling
from ganad_jax.methods import anogan

FLAGS = flags.FLAGS
flags.DEFINE_integer("image_size", 32, "Image side (power of two >= 16); ignored with --features.")
flags.DEFINE_integer("channels", 1, "Image channels.")
flags.DEFINE_integer("features", 0, "> 0: tabular vectors of this size (MLP nets), not images.")
flags.DEFINE_integer("nz", 100, "Latent size.")
flags.DEFINE_integer("base_features", 64, "DCGAN base features.")
flags.DEFINE_list("g_widths", ["20", "10", "3", "10", "20"], "Tabular G hidden widths.")
flags.DEFINE_list("d_widths", ["20", "10", "5"], "Tabular D hidden widths.")
flags.DEFINE_integer("samples", 1024, "Samples searched by the batched search.")
flags.DEFINE_integer("steps", 20, "Search steps timed (the cost per step is constant).")
flags.DEFINE_integer("restarts", 1, "Restarts per sample.")
flags.DEFINE_integer("chunk_size", 0, "Samples per compiled chunk; 0 = the search's auto choice.")
flags.DEFINE_float("lam", 0.1, "Feature weight lambda.")
flags.DEFINE_string("feature_layer", "penultimate", "Discriminator layer of the feature term.")
flags.DEFINE_integer("per_sample_samples", 32, "Samples timed in the per-sample loop (0 = skip).")
flags.DEFINE_integer("repeats", 3, "Timed repeats of (peak, batched search, per-sample loop).")
flags.DEFINE_integer("peak_size", 2048, "Side of the square matmul timed for the peak.")
flags.DEFINE_integer("peak_repeats", 10, "Timed matmuls for the peak (best is kept).")
flags.DEFINE_bool("pyod", False, "Also time PyOD's AnoGAN per-sample query loop (tabular only).")
flags.DEFINE_string("pyod_python", sys.executable, "Python interpreter that has torch and pyod.")
flags.DEFINE_integer("pyod_samples", 200, "Rows for PyOD's per-sample query loop.")
flags.DEFINE_integer("seed", 0, "Seed of the data and the nets.")
flags.DEFINE_string("json_out", "", "Write the results here as JSON.")

# Runs in --pyod_python (torch + pyod, no jax). Prints one JSON line.
_PYOD_SCRIPT = r"""
import json, sys, time
import numpy as np
import torch
from pyod.models.anogan import AnoGAN
args = json.loads(sys.argv[1])
x = np.load(args["data"])
torch.manual_seed(args["seed"])
# epochs=0 skips GAN training: fit() is then exactly PyOD's per-sample query loop
# (epochs_query Adam steps on one sample at a time, G and D in the loop).
model = AnoGAN(epochs=0, epochs_query=args["steps"], latent_dim_G=args["nz"],
               G_layers=args["g_widths"], D_layers=args["d_widths"], verbose=0)
start = time.perf_counter()
model.fit(x)
seconds = time.perf_counter() - start
import pyod
print(json.dumps({"seconds": seconds, "samples": int(x.shape[0]), "steps": args["steps"],
                  "torch": torch.__version__, "pyod": pyod.__version__,
                  "torch_threads": torch.get_num_threads()}))
"""


def build(config, input_shape, seed: int):
  """Untrained AnoGAN nets: eval-mode (generate_fn, feature_fn)."""
  nets = anogan.Networks(config, input_shape)
  method = anogan.make(config, input_shape)
  state = jax.jit(method.init)(jax.random.key(seed), jnp.zeros((2,) + input_shape))
  return anogan.search_fns(nets, state, config.anogan.search.feature_layer)


def timed(fn, *args, repeats: int = 1) -> tuple[float, float]:
  """(first call seconds incl. compile, best of `repeats` later calls)."""
  start = time.perf_counter()
  jax.block_until_ready(fn(*args))
  first = time.perf_counter() - start
  best = np.inf
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    best = min(best, time.perf_counter() - start)
  return first, best


def run_pyod(x: np.ndarray) -> dict:
  """Times PyOD's per-sample query loop in a subprocess (its own interpreter)."""
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "x.npy")
    np.save(path, x.astype(np.float32))
    args = {"data": path, "steps": FLAGS.steps, "nz": FLAGS.nz, "seed": FLAGS.seed,
            "g_widths": [int(w) for w in FLAGS.g_widths],
            "d_widths": [int(w) for w in FLAGS.d_widths]}
    proc = subprocess.run([FLAGS.pyod_python, "-c", _PYOD_SCRIPT, json.dumps(args)],
                          capture_output=True, text=True, check=False)
  if proc.returncode != 0:
    raise RuntimeError(f"PyOD run failed with {FLAGS.pyod_python}:\n{proc.stderr[-3000:]}")
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  result["sample_steps_per_s"] = result["samples"] * result["steps"] / result["seconds"]
  return result


def main(argv):
  del argv
  tabular = FLAGS.features > 0
  config = configs.base_config("anogan")
  config.model.nz = FLAGS.nz
  config.model.base_features = FLAGS.base_features
  config.anogan.g_widths = tuple(int(w) for w in FLAGS.g_widths)
  config.anogan.d_widths = tuple(int(w) for w in FLAGS.d_widths)
  search_config = config.anogan.search
  search_config.steps = FLAGS.steps
  search_config.restarts = FLAGS.restarts
  search_config.lam = FLAGS.lam
  search_config.feature_layer = FLAGS.feature_layer
  search_config.chunk_size = FLAGS.chunk_size
  if tabular:
    input_shape = (FLAGS.features,)
  else:
    input_shape = (FLAGS.image_size, FLAGS.image_size, FLAGS.channels)

  rng = np.random.default_rng(FLAGS.seed)
  if tabular:
    x = rng.standard_normal((FLAGS.samples,) + input_shape).astype(np.float32)
  else:
    x = rng.uniform(-1.0, 1.0, (FLAGS.samples,) + input_shape).astype(np.float32)
  generate_fn, feature_fn = build(config, input_shape, FLAGS.seed)
  key = jax.random.key(FLAGS.seed)
  results = {"config": {"input_shape": list(input_shape), "nz": FLAGS.nz,
                        "base_features": None if tabular else FLAGS.base_features,
                        "g_widths": list(config.anogan.g_widths) if tabular else None,
                        "d_widths": list(config.anogan.d_widths) if tabular else None,
                        "samples": FLAGS.samples, "steps": FLAGS.steps,
                        "restarts": FLAGS.restarts,
                        "chunk_size": latent_search.resolved_chunk_size(search_config, x),
                        "lam": FLAGS.lam, "feature_layer": FLAGS.feature_layer},
             "machine": {"platform": platform.platform(), "processor": platform.processor(),
                         "cpu_count": os.cpu_count(), "jax": jax.__version__,
                         "device": str(jax.devices()[0]),
                         "device_kind": jax.devices()[0].device_kind}}

  fpss = latent_search.flops_per_sample_step(
      generate_fn, feature_fn, jnp.asarray(x[:latent_search.resolved_chunk_size(search_config, x)]),
      FLAGS.nz, FLAGS.lam)
  results["flops_per_sample_step"] = fpss
  sample_steps = FLAGS.samples * FLAGS.steps * FLAGS.restarts

  batched_fn = jax.jit(lambda x, key: latent_search.search(
      generate_fn, feature_fn, x, key, search_config, FLAGS.nz).score)
  one_config = search_config.copy_and_resolve_references()
  one_config.chunk_size = 1
  one_fn = jax.jit(lambda x, key: latent_search.search(
      generate_fn, feature_fn, x, key, one_config, FLAGS.nz).score)
  xd = jnp.asarray(x)
  count = min(FLAGS.per_sample_samples, FLAGS.samples)

  start = time.perf_counter()
  jax.block_until_ready(batched_fn(xd, key))
  compile_and_first = time.perf_counter() - start
  if count:
    jax.block_until_ready(one_fn(xd[:1], key))

  # Repeats of (peak, batched search, per-sample loop): on a shared machine the
  # load drifts, so each repeat also gives ratios between neighbours in time.
  peaks, batched_runs, per_sample_runs = [], [], []
  for repeat in range(FLAGS.repeats):
    peaks.append(profiling.matmul_peak(FLAGS.peak_size, FLAGS.peak_repeats))
    logging.info("Repeat %d: batched search, %d samples x %d steps...", repeat, FLAGS.samples,
                 FLAGS.steps)
    start = time.perf_counter()
    jax.block_until_ready(batched_fn(xd, key))
    batched_runs.append(time.perf_counter() - start)
    if count:
      logging.info("Repeat %d: per-sample loop, %d samples...", repeat, count)
      start = time.perf_counter()
      scores = [one_fn(xd[i:i + 1], key) for i in range(count)]
      jax.block_until_ready(scores)
      per_sample_runs.append(time.perf_counter() - start)
  peaks.append(profiling.matmul_peak(FLAGS.peak_size, FLAGS.peak_repeats))

  best = min(batched_runs)
  batched = {"seconds": best, "seconds_all_repeats": batched_runs,
             "first_call_seconds": compile_and_first,
             "sample_steps_per_s": sample_steps / best,
             "seconds_per_1000_samples_at_500_steps": 1000 * 500 * FLAGS.restarts * best
             / sample_steps,
             "achieved_gflops": fpss * sample_steps / best / 1e9}
  results["batched"] = batched
  peak = max(p["gflops"] for p in peaks)
  results["matmul_peak"] = {"gflops": peak, "size": FLAGS.peak_size,
                            "all_gflops": [p["gflops"] for p in peaks]}
  # Best achieved over best peak: the headline ratio (conservative under load).
  results["achieved_over_peak"] = batched["achieved_gflops"] / peak
  # Each run against the mean of the peaks measured just before and after it.
  adjacent = [fpss * sample_steps / t / 1e9 / (0.5 * (peaks[i]["gflops"] + peaks[i + 1]["gflops"]))
              for i, t in enumerate(batched_runs)]
  results["achieved_over_adjacent_peak"] = {"median": float(np.median(adjacent)),
                                            "all": adjacent}
  if count:
    per_sample_best = min(per_sample_runs)
    rate = count * FLAGS.steps * FLAGS.restarts / per_sample_best
    results["per_sample"] = {"samples": count, "seconds": per_sample_best,
                             "seconds_all_repeats": per_sample_runs,
                             "sample_steps_per_s": rate,
                             "seconds_per_1000_samples_at_500_steps":
                                 1000 * 500 * FLAGS.restarts / rate}
    results["batched_over_per_sample"] = batched["sample_steps_per_s"] / rate
    paired = [(sample_steps / tb) / (count * FLAGS.steps * FLAGS.restarts / tp)
              for tb, tp in zip(batched_runs, per_sample_runs)]
    results["batched_over_per_sample_paired"] = {"median": float(np.median(paired)),
                                                 "all": paired}

  if FLAGS.pyod:
    if not tabular:
      raise app.UsageError("--pyod compares the tabular search: set --features.")
    count = min(FLAGS.pyod_samples, FLAGS.samples)
    logging.info("PyOD AnoGAN per-sample query loop: %d samples...", count)
    pyod = run_pyod(x[:count])
    results["pyod"] = pyod
    results["batched_over_pyod"] = batched["sample_steps_per_s"] / pyod["sample_steps_per_s"]

  text = json.dumps(results, indent=2)
  print(text)
  if FLAGS.json_out:
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.json_out)), exist_ok=True)
    with open(FLAGS.json_out, "w", encoding="utf-8") as f:
      f.write(text + "\n")


if __name__ == "__main__":
  cli.run_main(main)
