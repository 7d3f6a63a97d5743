r"""Train-step throughput (images/s) of anomalib's FastFlow, CFlow and CS-Flow on Lite features; JSON.

  nice -n 10 /work/peers/bin/python experiments/reference/anomalib_flow_bench.py \
      --method=fastflow --batch=32 --steps=3 --repeats=2 --json_out=/tmp/peers/bench_fastflow.json

One process, one method, the flow parts of `anomalib_flow_models` (anomalib's
code) on random N(0, 1) features of the shapes our Lite0 features have (the
inputs of `anomalib_flow_step.py`: fastflow stage2 / 3 / 5 at 224, cflow
stage3 / 5 / 6 at 224 (soft permutations, fiber batches of --fiber_batch,
lr 2e-4: our cflow's, the cflow-ad reference's), csflow stage6 of --csflow_size, /2, /4; or --dims
"CxHxW,..."), because our flows also train on features computed once
(`Method.embed`). A step is what anomalib's Lightning `training_step` does
for one batch, without Lightning's loop: FastFlow and CS-Flow one forward,
loss, backward, (CS-Flow: clip) and Adam step; CFlow its whole fiber loop
(an Adam step per 64 fibers, B*H*W / 64 of them per input). --with_backbone
adds timm's Lite0 forward on the batch's images (random 8-bit images at
224 / --csflow_size), which anomalib runs inside every training step.

Timing: --warmup untimed steps, then --repeats x --steps timed steps; the
best repeat's images/s is reported (all kept), with torch's thread count,
the CPU and its load average (the machine is shared: read loads above the
core count as loose figures).
"""

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import anomalib_common as common  # pylint: disable=wrong-import-position
import anomalib_flow_models as fm  # pylint: disable=wrong-import-position
import lite_timm  # pylint: disable=wrong-import-position

# (C, H, W) of Lite0's stages at 224 (and stage6's at 384, 192, 96 for CS-Flow).
LITE0 = {"stage2": (24, 56, 56), "stage3": (40, 28, 28), "stage5": (112, 14, 14),
         "stage6": (192, 7, 7)}
DEFAULT_DIMS = {"fastflow": [LITE0["stage2"], LITE0["stage3"], LITE0["stage5"]],
                "cflow": [LITE0["stage3"], LITE0["stage5"], LITE0["stage6"]]}


def csflow_dims(size: int) -> list[tuple[int, int, int]]:
  return [(192, -(-(size >> s) // 32), -(-(size >> s) // 32)) for s in range(3)]


def make_step(method: str, dims, args):
  """(model, step(feats) -> loss) for one method, anomalib's training step body."""
  torch.manual_seed(args.seed)
  if method == "fastflow":
    model = fm.build_fastflow(dims, 256)
    opt = fm.fastflow_optimizer(model)

    def step(feats):
      opt.zero_grad()
      loss, _ = fm.fastflow_loss(model, feats)
      loss.backward()
      opt.step()
      return float(loss.detach())
  elif method == "cflow":
    model = fm.build_cflow(dims, fiber_batch_size=args.fiber_batch, permute_soft=True)
    opt = fm.cflow_optimizer(model, lr=2e-4)

    def step(feats):
      return fm.cflow_train_step(model, opt, feats)
  else:
    model = fm.build_csflow(dims, hidden=args.csflow_hidden)
    opt = fm.csflow_optimizer(model)

    def step(feats):
      opt.zero_grad()
      loss, _ = fm.csflow_loss(model, feats)
      loss.backward()
      fm.csflow_clip(model)
      opt.step()
      return float(loss.detach())
  return model, step


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--method", required=True, choices=["fastflow", "cflow", "csflow"])
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--dims", default="", help="'CxHxW,...' of the inputs; '' = Lite0's (docstring)")
  p.add_argument("--csflow_size", type=int, default=384)
  p.add_argument("--csflow_hidden", type=int, default=1024)
  p.add_argument("--steps", type=int, default=3)
  p.add_argument("--warmup", type=int, default=1)
  p.add_argument("--repeats", type=int, default=2)
  p.add_argument("--with_backbone", action="store_true")
  p.add_argument("--fiber_batch", type=int, default=256, help="CFlow's fiber batch (ours 256).")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--threads", type=int, default=1)
  p.add_argument("--json_out", default="")
  a = p.parse_args()
  torch.set_num_threads(a.threads)
  try:
    dims = ([tuple(int(v) for v in d.split("x")) for d in a.dims.split(",")] if a.dims else
            csflow_dims(a.csflow_size) if a.method == "csflow" else DEFAULT_DIMS[a.method])
  except ValueError:
    common.fail(f"--dims={a.dims!r}: expected 'CxHxW,...'")
  machine = common.machine(a.threads)  # Its load average: at the start.
  gen = torch.Generator().manual_seed(a.seed)
  feats = [torch.randn((a.batch, *d), generator=gen) for d in dims]
  model, step = make_step(a.method, dims, a)
  backbone, images = None, None
  if a.with_backbone:
    backbone = lite_timm.load_lite("lite0")
    size = a.csflow_size if a.method == "csflow" else 224
    images = np.random.default_rng(a.seed).integers(0, 256, (a.batch, size, size, 1), np.uint8)

  def one_step():
    if backbone is not None:  # The features are thrown away: only the cost counts.
      x = lite_timm.preprocess(images, images.shape[1])
      lite_timm.stage_features(backbone, x, ("stage7",))
    return step(feats)

  losses = [one_step() for _ in range(a.warmup)]
  repeats = []
  for _ in range(a.repeats):
    start = time.perf_counter()
    losses += [one_step() for _ in range(a.steps)]
    repeats.append(time.perf_counter() - start)
  ips = [a.batch * a.steps / t for t in repeats]
  result = {"command": "python " + " ".join(sys.argv), "side": "anomalib", "method": a.method,
            "batch": a.batch, "inputs": [list(d) for d in dims], "with_backbone": a.with_backbone,
            "steps": a.steps, "warmup": a.warmup, "repeat_s": repeats, "images_per_s": max(ips),
            "images_per_s_all": ips, "losses": losses,
            "n_params": int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
            "machine": machine}
  if a.method == "csflow":
    result["csflow_hidden"] = a.csflow_hidden
  if a.method == "cflow":  # Adam steps per image batch: every fiber batch of every input.
    result["fiber_batch"] = a.fiber_batch
    result["fiber_batches_per_step"] = sum(a.batch * h * w // a.fiber_batch for _, h, w in dims)
  result["machine"]["load_average_at_end"] = list(os.getloadavg())
  print(f"{a.method}: {max(ips):.2f} images/s (best of {a.repeats} x {a.steps} steps of "
        f"{a.batch}; all {', '.join(f'{v:.2f}' for v in ips)})")
  if a.json_out:
    common.write_json(a.json_out, result)


if __name__ == "__main__":
  main()
