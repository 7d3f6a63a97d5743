r"""anomalib's PatchCore coreset and nearest-neighbour search, timed on given features (a driver).

  /work/peers/bin/python experiments/reference/patchcore_anomalib.py \
      --features=/tmp/f.npz --ratio=0.01 --repeats=3 --json_out=/tmp/anomalib.json

Run by `experiments/bench_patchcore.py` in the peers venv (torch + anomalib),
never imported by the package. Reads `features` (N, D) float32 and
`queries` (Q, D) float32 from the .npz; times, best of `--repeats`:
- coreset: `anomalib.models.components.KCenterGreedy(embedding, ratio)
  .sample_coreset()` as `PatchcoreModel.subsample_embedding` calls it (its
  SparseRandomProjection fit + transform included), torch seeded with 0;
- search: `PatchcoreModel.euclidean_dist(queries, bank)` then `.min(1)`, as
  `PatchcoreModel.nearest_neighbors(embedding, n_neighbors=1)` does.
torch uses every core. Writes {"coreset_s": [...], "search_s": [...], ...}.
"""

import argparse
import json
import os
import time

import numpy as np
import torch
from anomalib.models.components import KCenterGreedy
from anomalib.models.image.patchcore.torch_model import PatchcoreModel


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--features", required=True)
  parser.add_argument("--ratio", type=float, required=True)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--json_out", required=True)
  args = parser.parse_args()
  torch.set_num_threads(os.cpu_count())
  data = np.load(args.features)
  features, queries = torch.from_numpy(data["features"]), torch.from_numpy(data["queries"])
  coreset_s, search_s, bank = [], [], None
  for _ in range(args.repeats):
    torch.manual_seed(0)
    start = time.perf_counter()
    with torch.no_grad():
      bank = KCenterGreedy(embedding=features, sampling_ratio=args.ratio).sample_coreset()
    coreset_s.append(time.perf_counter() - start)
  for _ in range(args.repeats):
    start = time.perf_counter()
    with torch.no_grad():
      dist, index = PatchcoreModel.euclidean_dist(queries, bank).min(1)
    search_s.append(time.perf_counter() - start)
  result = {"coreset_s": coreset_s, "search_s": search_s, "bank_rows": int(bank.shape[0]),
            "torch_version": torch.__version__, "threads": torch.get_num_threads(),
            "mean_nn_distance": float(dist.mean())}
  with open(args.json_out, "w", encoding="utf-8") as f:
    json.dump(result, f, indent=1)


if __name__ == "__main__":
  main()
