r"""anomalib's FastFlow, CFlow and CS-Flow flow parts trained on our tiles split (Lite0 features); AUROC JSON.

  nice -n 10 /work/peers/bin/python experiments/reference/anomalib_flow_auroc.py \
      --export_dir=/tmp/peers/export --method=fastflow --seeds=0 --steps=200 --batch=32 \
      --json_out=/tmp/peers/runs/anomalib_fastflow.json

Per seed: the split of `lite_export.py` (train = train/good less our seeded
validation normals, test = test/*), features computed once with timm's Lite0
holding the package weights (`anomalib_flow_step.py`'s inputs: fastflow
stage2 / 3 / 5 at 224, cflow stage3 / 5 / 6 at 224, csflow stage6 at
--csflow_size, /2, /4), `torch.manual_seed(seed)` before building
anomalib's flow parts (`anomalib_flow_models.py`), --steps training steps of
--batch images (a reshuffle of the training features every epoch, torch's
generator), each anomalib's training-step body, then the test split scored
with anomalib's score and map: FastFlow and CS-Flow by batches, CFlow in one
pass (its map is normalised by the maximum over what it scores at once).
Maps are upsampled bilinearly to the masks' 256 px for the pixel AUROC.
No early stopping, no validation: the state after the last step. anomalib's
flows as shipped train 500 (FastFlow) or more epochs on a GPU; --steps says
the budget each run had.
"""

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import anomalib_common as common  # pylint: disable=wrong-import-position
import anomalib_flow_bench as bench  # pylint: disable=wrong-import-position
import anomalib_flow_models as fm  # pylint: disable=wrong-import-position
import anomalib_flow_step as step_driver  # pylint: disable=wrong-import-position
import lite_timm  # pylint: disable=wrong-import-position


def run(a, seed: int, export: dict, backbone) -> dict:
  split = common.load_split(a.export_dir, seed)
  size = int(export["input_size"])
  t0 = time.time()
  train = step_driver.method_features(a.method, backbone, split["x_train"], size, a.csflow_size)
  test = step_driver.method_features(a.method, backbone, split["x_test"], size, a.csflow_size)
  embed_s = time.time() - t0
  dims = [tuple(f.shape[1:]) for f in train]
  np.random.seed(seed)
  model, step = bench.make_step(a.method, dims, argparse.Namespace(
      seed=seed, csflow_hidden=a.csflow_hidden, fiber_batch=a.fiber_batch))
  gen = torch.Generator().manual_seed(seed)
  n = train[0].shape[0]
  order, losses, t1 = torch.randperm(n, generator=gen), [], time.time()
  for i in range(a.steps):
    k = (i * a.batch) % n
    if k + a.batch > n:  # A new epoch: reshuffle, drop the last partial batch.
      order, k = torch.randperm(n, generator=gen), 0
    idx = order[k:k + a.batch]
    losses.append(step([f[idx] for f in train]))
  train_s = time.time() - t1
  t2 = time.time()
  if a.method == "cflow":
    scores, maps = fm.cflow_score(model, test, a.image_size)
  else:
    fn = fm.fastflow_score if a.method == "fastflow" else (
        lambda m, f: fm.csflow_score(m, f, a.image_size))
    parts = [fn(model, [f[i:i + 32] for f in test]) for i in range(0, test[0].shape[0], 32)]
    scores, maps = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
  result = common.metrics(scores, maps, split)
  result.update(seed=seed, steps=a.steps, batch=a.batch, inputs=[list(d) for d in dims],
                loss_first=losses[0], loss_last=losses[-1], losses_every_10=losses[::10],
                embed_s=embed_s, train_s=train_s, score_s=time.time() - t2,
                wall_s=time.time() - t0)
  print(f"{a.method} seed {seed}: image AUROC {result['image_auroc']:.4f}, pixel AUROC "
        f"{result.get('pixel_auroc', float('nan')):.4f} after {a.steps} steps "
        f"(loss {losses[0]:.4g} -> {losses[-1]:.4g}, train {train_s:.0f} s)", flush=True)
  return result


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--export_dir", required=True)
  p.add_argument("--json_out", required=True)
  p.add_argument("--method", required=True, choices=["fastflow", "cflow", "csflow"])
  p.add_argument("--seeds", default="0")
  p.add_argument("--steps", type=int, default=200)
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--image_size", type=int, default=256)
  p.add_argument("--csflow_size", type=int, default=384)
  p.add_argument("--csflow_hidden", type=int, default=64)
  p.add_argument("--fiber_batch", type=int, default=256)
  p.add_argument("--threads", type=int, default=1)
  a = p.parse_args()
  if a.steps < 1 or a.batch < 1:
    common.fail(f"--steps={a.steps}, --batch={a.batch}: both must be >= 1")
  torch.set_num_threads(a.threads)
  export = common.export_record(a.export_dir)
  backbone = lite_timm.load_lite("lite0")
  record = {"command": "python " + " ".join(sys.argv), "method": a.method,
            "model": "anomalib flow parts (anomalib_flow_models.py) on Lite0 features",
            "machine": common.machine(a.threads), "data": export["config"]["data"], "runs": []}
  for seed in [int(s) for s in a.seeds.split(",")]:
    record["runs"].append(run(a, seed, export, backbone))
    common.write_json(a.json_out, record)


if __name__ == "__main__":
  main()
