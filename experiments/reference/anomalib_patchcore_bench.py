r"""anomalib's PatchCore coreset and nearest-neighbour search, timed (peers venv); prints JSON.

  # random N(0, 1) features made here, the same numbers as bench_patchcore.py draws for ours
  nice -n 10 /work/peers/bin/python experiments/reference/anomalib_patchcore_bench.py \
      --patches=100000 --dim=152 --queries=25088 --ratio=0.01 --repeats=3
  # or the very features of the other side (an .npz with `features` (N, D), `queries` (Q, D))
  /work/peers/bin/python experiments/reference/anomalib_patchcore_bench.py \
      --features=/tmp/f.npz --ratio=0.01 --repeats=3 --json_out=/tmp/anomalib.json

anomalib 2.7.0's own code, as `PatchcoreModel` runs it, torch seeded with
--seed before each repeat:
- coreset: `KCenterGreedy(embedding, sampling_ratio).sample_coreset()` (what
  `subsample_embedding` calls): its SparseRandomProjection (eps 0.9; the
  target dimension is the Johnson-Lindenstrauss bound for N rows, which can
  exceed D) fit + transform, then int(N x ratio) - 1 greedy iterations of
  a full distance update;
- search: `PatchcoreModel.nearest_neighbors(queries, n_neighbors=1)` on a
  model whose memory bank is that coreset: `euclidean_dist` (matmul form)
  in chunks of 1,024 queries, then min; `search_unchunked_s` times one
  `euclidean_dist(queries, bank).min(1)` over all queries (the arithmetic
  without the chunk loop).
Best of --repeats, every time kept. The JSON (stdout, and --json_out) also
holds the machine (CPU, torch threads, load average, versions), the sizes,
the projected dimension and the mean nearest distance (a check that the
sides search the same thing). `bench(features, queries, ratio, repeats,
seed)` is the same, importable.

Keys `coreset_s`, `search_s`, `bank_rows`, `threads` are those that
experiments/bench_patchcore.py reads from experiments/reference/
patchcore_anomalib.py; this driver can stand in for it.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def bench(features: np.ndarray, queries: np.ndarray, ratio: float, repeats: int = 3,
          seed: int = 0) -> dict:
  """Times anomalib's KCenterGreedy and nearest-neighbour search on (N, D) / (Q, D) float32."""
  from anomalib.models.components import KCenterGreedy  # pylint: disable=import-outside-toplevel
  from anomalib.models.image.patchcore.torch_model import PatchcoreModel  # pylint: disable=import-outside-toplevel
  import anomalib.models.components.sampling.k_center_greedy as kcg  # pylint: disable=import-outside-toplevel
  kcg.tqdm = lambda iterable, **kwargs: iterable  # No progress bar inside the timing.
  emb = torch.from_numpy(np.ascontiguousarray(features, np.float32))
  q = torch.from_numpy(np.ascontiguousarray(queries, np.float32))
  coreset_s, search_s, unchunked_s = [], [], []
  sampler = bank = None
  for _ in range(repeats):
    torch.manual_seed(seed)
    start = time.perf_counter()
    with torch.no_grad():
      sampler = KCenterGreedy(embedding=emb, sampling_ratio=ratio)
      bank = sampler.sample_coreset()
    coreset_s.append(time.perf_counter() - start)
  # nearest_neighbors reads only self.memory_bank and self.euclidean_dist (a staticmethod):
  # a stand-in object spares building a backbone.
  holder = type("Holder", (), {"euclidean_dist": staticmethod(PatchcoreModel.euclidean_dist)})()
  holder.memory_bank = bank
  for _ in range(repeats):
    start = time.perf_counter()
    with torch.no_grad():
      dist, _ = PatchcoreModel.nearest_neighbors(holder, q, n_neighbors=1)
    search_s.append(time.perf_counter() - start)
  for _ in range(repeats):
    start = time.perf_counter()
    with torch.no_grad():
      PatchcoreModel.euclidean_dist(q, bank).min(1)
    unchunked_s.append(time.perf_counter() - start)
  return {"coreset_s": coreset_s, "search_s": search_s, "search_unchunked_s": unchunked_s,
          "best": {"coreset_s": min(coreset_s), "search_s": min(search_s),
                   "search_unchunked_s": min(unchunked_s)},
          "patches": int(emb.shape[0]), "dim": int(emb.shape[1]), "queries": int(q.shape[0]),
          "ratio": ratio, "bank_rows": int(bank.shape[0]),
          "projected_dim": int(sampler.features.shape[1]),
          "mean_nn_distance": float(dist.mean()), "threads": torch.get_num_threads()}


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--features", default="", help=".npz with `features` and `queries`; '' = random")
  p.add_argument("--patches", type=int, default=100_000)
  p.add_argument("--dim", type=int, default=152)
  p.add_argument("--queries", type=int, default=25_088)
  p.add_argument("--ratio", type=float, default=0.01)
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--threads", type=int, default=os.cpu_count())
  p.add_argument("--json_out", default="")
  a = p.parse_args()
  if not 0 < a.ratio <= 1:
    print(f"error: --ratio={a.ratio}: must be in (0, 1]", file=sys.stderr)
    sys.exit(1)
  torch.set_num_threads(a.threads)
  if a.features:
    if not os.path.isfile(a.features):
      print(f"error: --features={a.features}: no such file", file=sys.stderr)
      sys.exit(1)
    with np.load(a.features) as data:
      if "features" not in data.files or "queries" not in data.files:
        print(f"error: {a.features}: needs arrays `features` and `queries`", file=sys.stderr)
        sys.exit(1)
      features, queries = data["features"], data["queries"]
    source = a.features
  else:
    rng = np.random.default_rng(a.seed)  # As experiments/bench_patchcore.py draws ours.
    features = rng.normal(size=(a.patches, a.dim)).astype(np.float32)
    queries = rng.normal(size=(a.queries, a.dim)).astype(np.float32)
    source = f"default_rng({a.seed}).normal, features then queries, float32"
  import anomalib_common as common  # pylint: disable=import-outside-toplevel
  result = {"command": "python " + " ".join(sys.argv), "side": "anomalib", "features": source,
            "machine": common.machine(a.threads),
            **bench(features, queries, a.ratio, a.repeats, a.seed)}
  text = json.dumps(result, indent=1)
  print(text)
  if a.json_out:
    common.write_json(a.json_out, result)


if __name__ == "__main__":
  main()
