r"""Same backbone, same weights: timm's tf_efficientnet_lite0 (package weights) beside ours.

  # ours (ganad_jax venv): the check images and our features
  PYTHONPATH=$PWD nice -n 10 python experiments/reference/lite_export.py ... --out_dir=/tmp/peers/export
  # theirs (peers venv)
  nice -n 10 /work/peers/bin/python experiments/reference/lite_check.py \
      --export_dir=/tmp/peers/export --json_out=/tmp/peers/lite_check.json

Two comparisons per stage (stem, stage1..7, head), NCHW vs our NHWC:

- *same input*: timm fed our resized input (`resized` of lite_features.npz,
  normalised as ours): the network and the weights alone;
- *own resize*: timm fed torch's `F.interpolate(bilinear, antialias=True)`
  of the same 8-bit images: what an anomalib pipeline computes end to end.

Per stage: max |ours - timm|, that over the stage's max |ours| (relative),
and the mean |difference| over the mean |ours|. Pass when every stage's
relative max difference is below --tolerance (default 1e-4: float32
convolutions summed in another order) for *same input*, and below
--resize_tolerance (default 1e-4 too: torch's antialiased bilinear resize
and jax.image.resize's gave the same input to 2.4e-7 here) for *own resize*.
Exit status 1 if either fails.
"""

import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lite_timm  # pylint: disable=wrong-import-position


def compare(ours: dict, theirs: dict) -> dict:
  out = {}
  for k, a in ours.items():
    b = theirs[k].permute(0, 2, 3, 1).numpy()
    if a.shape != b.shape:
      raise ValueError(f"stage {k}: ours {a.shape}, timm {b.shape}")
    d = np.abs(a - b)
    out[k] = {"shape": list(a.shape[1:]), "max_abs": float(d.max()),
              "max_rel": float(d.max() / np.abs(a).max()),
              "mean_rel": float(d.mean() / np.abs(a).mean())}
  return out


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--export_dir", required=True)
  p.add_argument("--json_out", required=True)
  p.add_argument("--variant", default="lite0")
  p.add_argument("--tolerance", type=float, default=1e-4)
  p.add_argument("--resize_tolerance", type=float, default=1e-4)
  p.add_argument("--threads", type=int, default=1)
  a = p.parse_args()
  torch.set_num_threads(a.threads)
  path = os.path.join(a.export_dir, "lite_features.npz")
  if not os.path.isfile(path):
    print(f"error: {path} not found (run lite_export.py first)", file=sys.stderr)
    sys.exit(1)
  with open(os.path.join(a.export_dir, "export.json")) as f:
    export = json.load(f)
  data = np.load(path)
  order = ["stem"] + [f"stage{i}" for i in range(1, 8)] + ["head"]
  ours = {k: data[f"feat_{k}"] for k in order if f"feat_{k}" in data.files}
  weights = lite_timm.package_weights(a.variant)
  model = lite_timm.load_lite(a.variant, weights)
  size = int(export["input_size"])
  x_same = lite_timm.normalize(torch.from_numpy(data["resized"]).permute(0, 3, 1, 2).contiguous())
  x_own = lite_timm.preprocess(data["images"], size)
  resize_diff = float((x_same - x_own).abs().max()) * 128.0 / 127.5  # In [-1, 1] units.
  same = compare(ours, lite_timm.stage_features(model, x_same))
  own = compare(ours, lite_timm.stage_features(model, x_own))
  ok_same = all(v["max_rel"] < a.tolerance for v in same.values())
  ok_own = all(v["max_rel"] < a.resize_tolerance for v in own.values())
  import timm  # pylint: disable=import-outside-toplevel
  result = {"command": "python " + " ".join(sys.argv), "weights": weights,
            "ours_weights_record": export["weights"], "timm_model": f"tf_efficientnet_{a.variant}",
            "torch": torch.__version__, "timm": timm.__version__, "images": int(len(data["images"])),
            "input_size": size, "resize_max_abs_diff_in_minus1_1": resize_diff,
            "tolerance": a.tolerance, "resize_tolerance": a.resize_tolerance,
            "same_input": same, "own_resize": own, "pass_same_input": ok_same,
            "pass_own_resize": ok_own}
  os.makedirs(os.path.dirname(os.path.abspath(a.json_out)), exist_ok=True)
  with open(a.json_out, "w") as f:
    json.dump(result, f, indent=1)
  print(f"resize: max |ours - torch| {resize_diff:.2e} (images in [-1, 1])")
  print("| stage | shape | same input: max abs | max rel | own resize: max abs | max rel | mean rel |")
  print("|---|---|---|---|---|---|---|")
  for k in same:
    s, o = same[k], own[k]
    print(f"| {k} | {tuple(s['shape'])} | {s['max_abs']:.2e} | {s['max_rel']:.2e} | "
          f"{o['max_abs']:.2e} | {o['max_rel']:.2e} | {o['mean_rel']:.2e} |")
  print(f"same input within {a.tolerance:g}: {ok_same}; own resize within "
        f"{a.resize_tolerance:g}: {ok_own}")
  sys.exit(0 if ok_same and ok_own else 1)


if __name__ == "__main__":
  main()
