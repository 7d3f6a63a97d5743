r"""PatchCore's coreset and nearest-neighbour search: ours (JAX) vs faiss-cpu vs anomalib, one CPU.

  PYTHONPATH=/path/to/faiss_pkgs python experiments/bench_patchcore.py --patches=100000 \
      --dim=152 --ratio=0.01 --queries=25088 --repeats=3 --json_out=/tmp/bench_patchcore.json

The same random features (N(0, 1), `--patches` x `--dim`, seed 0) on every
side; `--queries` query rows (25,088 = one batch of 32 images on a 28 x 28
grid) against the coreset of int(ratio x patches) rows. Best of `--repeats`
(all kept), sides run one after the other on the same CPU:
- ours: `coreset.random_projection` + `coreset.greedy_coreset` (as
  PatchCore's fit: 50 jitted segments), and `coreset.nearest` (k = 1, jitted,
  chunked at patchcore.chunk_mb's default 64 MB); first calls, which compile,
  timed apart;
- faiss (if `import faiss` works; not a dependency: install faiss-cpu into
  a folder of its own and put it on PYTHONPATH): IndexFlatL2 add + search
  (k = 1) of the same queries against our coreset, as the reference code
  scores; faiss has no greedy coreset (the reference's is torch);
- anomalib (if `--anomalib_python` runs): `experiments/reference/
  patchcore_anomalib.py` in that interpreter (a subprocess: torch and
  anomalib are never imported here): `KCenterGreedy.sample_coreset` and
  `PatchcoreModel.euclidean_dist(...).min(1)`.
The JSON holds every time, the speed-ups (anomalib / ours, faiss / ours) and
the machine.
"""

import json
import os
import platform
import subprocess
import tempfile
import time

from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from ganad_jax import cli
from ganad_jax import run_outputs
from ganad_jax.methods import coreset

FLAGS = flags.FLAGS
_HERE = os.path.dirname(os.path.abspath(__file__))
flags.DEFINE_integer("patches", 100_000, "Rows of the full bank (training patches).")
flags.DEFINE_integer("dim", 152, "Feature channels (Lite0 stages 3 + 5: 152).")
flags.DEFINE_float("ratio", 0.01, "Coreset ratio.")
flags.DEFINE_integer("queries", 25_088, "Query rows of one search.")
flags.DEFINE_integer("repeats", 3, "Timed repeats per side; the best is reported.")
flags.DEFINE_string("anomalib_python", "/work/peers/bin/python",
                    "A Python with torch + anomalib; '' skips anomalib.")
flags.DEFINE_string("json_out", "", "Write the results here as JSON.")


def _best(times):
  return {"best_s": min(times), "all_s": times}


def _ours(features, queries, k):
  key = jax.random.key(0)

  def run_coreset():
    projected = coreset.random_projection(key, features)
    indices, _ = coreset.greedy_coreset(projected, k, start=0, segments=min(k - 1, 50),
                                        progress=lambda _: None)
    return indices

  search = jax.jit(lambda q, b: coreset.nearest(q, b, 1))
  start = time.perf_counter()
  indices = run_coreset()
  first_coreset = time.perf_counter() - start
  bank = jnp.asarray(features[indices])
  start = time.perf_counter()
  jax.block_until_ready(search(queries, bank))
  first_search = time.perf_counter() - start
  coreset_s, search_s = [], []
  for _ in range(FLAGS.repeats):
    start = time.perf_counter()
    run_coreset()
    coreset_s.append(time.perf_counter() - start)
  for _ in range(FLAGS.repeats):
    start = time.perf_counter()
    dist, _ = jax.block_until_ready(search(queries, bank))
    search_s.append(time.perf_counter() - start)
  return {"coreset": _best(coreset_s), "search": _best(search_s),
          "first_call_s": {"coreset": first_coreset, "search": first_search},
          "mean_nn_distance": float(jnp.mean(dist))}, np.asarray(bank)


def _faiss(queries, bank):
  try:
    import faiss  # pylint: disable=g-import-not-at-top  # Optional, never a dependency.
  except ImportError as e:
    return {"skipped": f"import faiss failed: {e}"}
  times = []
  for _ in range(FLAGS.repeats):
    start = time.perf_counter()
    index = faiss.IndexFlatL2(bank.shape[1])
    index.add(bank)
    sq, _ = index.search(queries, 1)
    times.append(time.perf_counter() - start)
  return {"search": _best(times), "version": faiss.__version__,
          "threads": faiss.omp_get_max_threads(),
          "mean_nn_distance": float(np.sqrt(np.maximum(sq, 0)).mean())}


def _anomalib(features, queries):
  if not FLAGS.anomalib_python or not os.path.exists(FLAGS.anomalib_python):
    return {"skipped": f"--anomalib_python={FLAGS.anomalib_python!r} not found"}
  with tempfile.TemporaryDirectory() as tmp:
    path, out = os.path.join(tmp, "features.npz"), os.path.join(tmp, "anomalib.json")
    np.savez(path, features=features, queries=queries)
    proc = subprocess.run([FLAGS.anomalib_python, os.path.join(_HERE, "reference",
                                                              "patchcore_anomalib.py"),
                           f"--features={path}", f"--ratio={FLAGS.ratio}",
                           f"--repeats={FLAGS.repeats}", f"--json_out={out}"],
                          capture_output=True, text=True, check=False)
    if proc.returncode:
      return {"skipped": f"the driver failed: {proc.stderr.strip().splitlines()[-1:]}"}
    with open(out, encoding="utf-8") as f:
      raw = json.load(f)
  return {"coreset": _best(raw.pop("coreset_s")), "search": _best(raw.pop("search_s")), **raw}


def main(argv):
  del argv
  rng = np.random.default_rng(0)
  features = rng.normal(size=(FLAGS.patches, FLAGS.dim)).astype(np.float32)
  queries = rng.normal(size=(FLAGS.queries, FLAGS.dim)).astype(np.float32)
  k = int(FLAGS.patches * FLAGS.ratio)
  results = {"patches": FLAGS.patches, "dim": FLAGS.dim, "ratio": FLAGS.ratio,
             "coreset_rows": k, "queries": FLAGS.queries, "repeats": FLAGS.repeats,
             "devices": f"{jax.device_count()} x {jax.devices()[0].platform}",
             "cpu_count": os.cpu_count(), "processor": platform.processor(),
             "load_average_at_start": os.getloadavg(), "jax_version": jax.__version__}
  results["ours"], bank = _ours(features, queries, k)
  results["faiss"] = _faiss(queries, bank)
  results["anomalib"] = _anomalib(features, queries)
  results["load_average_at_end"] = os.getloadavg()
  ours = results["ours"]
  speedup = {}
  if "coreset" in results["anomalib"]:
    a = results["anomalib"]
    speedup["anomalib_over_ours_coreset"] = a["coreset"]["best_s"] / ours["coreset"]["best_s"]
    speedup["anomalib_over_ours_search"] = a["search"]["best_s"] / ours["search"]["best_s"]
    speedup["anomalib_over_ours_total"] = ((a["coreset"]["best_s"] + a["search"]["best_s"])
                                           / (ours["coreset"]["best_s"] + ours["search"]["best_s"]))
  if "search" in results["faiss"]:
    speedup["faiss_over_ours_search"] = (results["faiss"]["search"]["best_s"]
                                         / ours["search"]["best_s"])
  results["speedup"] = speedup
  print(json.dumps(results, indent=1))
  if FLAGS.json_out:
    run_outputs.write_json(FLAGS.json_out, results)


if __name__ == "__main__":
  cli.run_main(main)
