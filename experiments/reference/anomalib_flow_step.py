r"""anomalib's flows on a fixed batch of Lite features: initial weights and first-step losses, dumped.

  nice -n 10 /work/peers/bin/python experiments/reference/anomalib_flow_step.py \
      --export_dir=/tmp/peers/export --out_dir=/tmp/peers/step --methods=fastflow,cflow,csflow

For each method (`anomalib_flow_models`: anomalib's flow parts, built for
the Lite feature shapes), with `torch.manual_seed(--seed)` before building:
the first --batch training images of split seed 0 (`lite_export.py`),
through timm's Lite0 with the package weights (equal to ours within 7e-6
relative, `lite_check.py`); then --steps training steps of anomalib's code on
that same batch, the loss recorded before each update. Inputs:

- fastflow: stage2, stage3, stage5 at 224 (strides 4, 8, 16: the analogue of
  anomalib's resnet18 out_indices [1, 2, 3]); 8 flow steps, hidden ratio 1,
  3x3 / 1x1 alternating (anomalib's defaults).
- cflow: stage3, stage5, stage6 at 224 (strides 8, 16, 32, as our cflow:
  the cflow-ad reference's B5 blocks -5, -3, -2); 8 coupling blocks,
  condition 128, clamp 1.9, and, set through anomalib's own constructor
  arguments to the cflow-ad reference's values that our cflow uses, soft
  permutations (random rotations; anomalib's default is hard), fiber batches
  of 256 (anomalib's 64) and Adam lr 2e-4 (anomalib's 1e-4). One "step" =
  one fiber batch (Cflow.training_step runs an Adam step per fiber batch):
  its losses of the first image batch, per input, in its random fiber order
  (saved), are recorded; and the order-free loss over all fibers at the
  initial weights.
- csflow: stage6 of the image at --csflow_size, /2, /4 (nearest, as
  anomalib's CsFlowMultiScaleFeatureExtractor), 4 blocks, kernels 3, 3, 3,
  5, clamp 3, hidden --csflow_hidden (anomalib's 1024 makes a 600 MB dump;
  the check uses 64 by default: the computation is the same). Two losses:
  anomalib's CsFlowLoss (its log-det summed over the batch) and the
  reference's (each example's own log-det).

Writes per method `<method>.npz` (`input<i>`: the features, NHWC float32, as
ours takes them; `param/<name>`: every initial torch parameter and buffer,
torch layout (conv OIHW, linear (out, in), LayerNorm (C, H, W)); `perm/<name>`:
each fixed permutation as indices, y[..., i] = u[..., perm[i]] channels-last)
and `<method>.json` (shapes, settings, losses, torch / anomalib versions).
A JAX side loads the parameters and permutations into ours and compares the
losses (`flow_step_compare.py`).
"""

import argparse
import os
import sys
import time

import numpy as np
import torch
from torch.nn import functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import anomalib_common as common  # pylint: disable=wrong-import-position
import anomalib_flow_models as fm  # pylint: disable=wrong-import-position
import lite_timm  # pylint: disable=wrong-import-position

STAGES = {"fastflow": ("stage2", "stage3", "stage5"), "cflow": ("stage3", "stage5", "stage6"),
          "csflow": ("stage6",)}


def method_features(method: str, backbone, images: np.ndarray, size: int, csflow_size: int,
                    batch: int = 16) -> list[torch.Tensor]:
  """The method's input features (NCHW), computed with the timm Lite backbone."""
  if method != "csflow":
    feats = common.lite_features(backbone, images, STAGES[method], size, batch)
    return [feats[k] for k in STAGES[method]]
  scales = [[], [], []]
  for i in range(0, len(images), batch):
    x = lite_timm.preprocess(images[i:i + batch], csflow_size)
    for s in range(3):
      xs = x if s == 0 else F.interpolate(x, size=(csflow_size >> s, csflow_size >> s))
      scales[s].append(lite_timm.stage_features(backbone, xs, ("stage6",))["stage6"])
  return [torch.cat(s) for s in scales]


def build(method: str, dims, args):
  if method == "fastflow":
    return fm.build_fastflow(dims, args.image_size)
  if method == "cflow":
    return fm.build_cflow(dims, fiber_batch_size=256, permute_soft=True)
  return fm.build_csflow(dims, hidden=args.csflow_hidden)


def run(method: str, feats: list[torch.Tensor], args) -> tuple[dict, dict]:
  """(JSON record, arrays) of one method's check."""
  dims = [tuple(f.shape[1:]) for f in feats]
  torch.manual_seed(args.seed)
  np.random.seed(args.seed)  # scipy's special_ortho_group (soft permutations) draws from it.
  model = build(method, dims, args)
  arrays = {f"input{i}": f.permute(0, 2, 3, 1).contiguous().numpy() for i, f in enumerate(feats)}
  arrays.update({f"param/{k}": v.detach().numpy().copy() for k, v in model.state_dict().items()})
  arrays.update({f"perm/{k}": v for k, v in fm.hard_permutations(model).items()})
  rec = {"method": method, "inputs": [list(d) for d in dims], "seed": args.seed,
         "batch": int(feats[0].shape[0]), "losses": []}
  t0 = time.time()
  if method == "cflow":
    rec["loss_all_fibers_init"] = fm.cflow_full_loss(model, feats)
    opt = fm.cflow_optimizer(model, lr=2e-4)
    record = {}
    rec["avg_loss"] = fm.cflow_train_step(model, opt, feats, record)
    rec["fiber_losses"] = record["fiber_losses"]
    rec["losses"] = [fl[:args.steps] for fl in record["fiber_losses"]]
    arrays.update({f"fiber_perm{i}": p for i, p in enumerate(record["fiber_perm"])})
    rec["settings"] = {"coupling_blocks": 8, "condition_vector": 128, "clamp_alpha": 1.9,
                       "fiber_batch_size": 256, "permute_soft": True,
                       "global_affine_type": "SOFTPLUS",
                       "subnet": "Linear(C, 2C), ReLU, Linear(2C, 2 * (C // 2))",
                       "optimizer": "Adam lr 2e-4", "loss": "-logsigmoid(log p / C), mean"}
  else:
    opt = fm.fastflow_optimizer(model) if method == "fastflow" else fm.csflow_optimizer(model)
    loss_fn = fm.fastflow_loss if method == "fastflow" else fm.csflow_loss
    for step in range(args.steps):
      opt.zero_grad()
      loss, extra = loss_fn(model, feats)
      if step == 0 and method == "fastflow":
        rec["logdet_init"] = [j.numpy().tolist() for j in extra["logdet"]]
        rec["loss_init_per_input"] = [
            float(torch.mean(0.5 * torch.sum(z**2, dim=(1, 2, 3)) - j))
            for z, j in zip(extra["z"], extra["logdet"])]
      if method == "csflow":  # At init every gamma is 0: s = t = 0, log-det 0; later steps tell.
        # GraphINN broadcasts the coupling's one number (summed over the batch) to (B,).
        rec.setdefault("logdet_as_returned", []).append(extra["logdet_batch_sum"].numpy().tolist())
        ref_loss, per_example = fm.csflow_reference_loss(model, feats)
        rec.setdefault("reference_losses", []).append(ref_loss)
        rec.setdefault("logdet_per_example", []).append(per_example.ravel().tolist())
      loss.backward()
      if method == "csflow":
        fm.csflow_clip(model)
      opt.step()
      rec["losses"].append(float(loss.detach()))
    if method == "fastflow":
      rec["settings"] = {"flow_steps": 8, "hidden_ratio": 1.0, "conv3x3_only": False,
                         "clamp": 2.0, "layer_norm": "LayerNorm([C, H, W]) affine, eps 1e-5",
                         "optimizer": "Adam lr 1e-3, weight_decay 1e-5",
                         "loss": "sum over inputs of mean_b(0.5 * sum z^2 - logdet)"}
    else:
      rec["settings"] = {"blocks": 4, "kernels": [3, 3, 3, 5], "clamp": 3.0,
                         "hidden": args.csflow_hidden, "image_size": args.csflow_size,
                         "optimizer": "Adam lr 2e-4, betas (0.5, 0.9), eps 1e-4, "
                                      "weight_decay 1e-5, grad norm clipped to 1",
                         "loss": "CsFlowLoss: mean_b(0.5 * sum z^2 - SUM_b logdet) / D"}
  rec["step_wall_s"] = time.time() - t0
  rec["n_params"] = int(sum(p.numel() for p in model.parameters() if p.requires_grad))
  return rec, arrays


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--export_dir", required=True)
  p.add_argument("--out_dir", required=True)
  p.add_argument("--methods", default="fastflow,cflow,csflow")
  p.add_argument("--batch", type=int, default=8)
  p.add_argument("--steps", type=int, default=3)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--image_size", type=int, default=256, help="Map size (the masks').")
  p.add_argument("--csflow_size", type=int, default=384)
  p.add_argument("--csflow_hidden", type=int, default=64)
  p.add_argument("--variant", default="lite0")
  p.add_argument("--threads", type=int, default=1)
  a = p.parse_args()
  methods = a.methods.split(",")
  unknown = [m for m in methods if m not in STAGES]
  if unknown:
    common.fail(f"--methods: {unknown[0]!r} is not one of {', '.join(STAGES)}")
  if a.csflow_size % 128:
    common.fail(f"--csflow_size={a.csflow_size}: anomalib's cross-scale flow needs a multiple of "
                "128 (three grids, each half the previous)")
  torch.set_num_threads(a.threads)
  export = common.export_record(a.export_dir)
  images = common.load_split(a.export_dir, 0)["x_train"][:a.batch]
  backbone = lite_timm.load_lite(a.variant)
  os.makedirs(a.out_dir, exist_ok=True)
  for method in methods:
    feats = method_features(method, backbone, images, int(export["input_size"]), a.csflow_size)
    rec, arrays = run(method, feats, a)
    rec.update(command="python " + " ".join(sys.argv), machine=common.machine(a.threads),
               backbone=f"tf_efficientnet_{a.variant} + package weights",
               images="first %d of x_train, split seed 0" % a.batch,
               stages=list(STAGES[method]))
    np.savez(os.path.join(a.out_dir, f"{method}.npz"), **arrays)
    common.write_json(os.path.join(a.out_dir, f"{method}.json"), rec)
    print(f"{method}: inputs {rec['inputs']}, {rec['n_params']:,} params, losses {rec['losses']}"
          + (f", the reference's loss {rec['reference_losses']}"
             if "reference_losses" in rec else ""), flush=True)


if __name__ == "__main__":
  main()
