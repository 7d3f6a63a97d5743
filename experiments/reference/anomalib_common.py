"""What the anomalib drivers share (peers venv: torch, timm, anomalib; no jax).

- `load_split(export_dir, seed)`: the tiles' split that `lite_export.py`
  wrote from `ganad_jax.data.load` (uint8 images, labels, kinds, masks).
- `lite_features(model, images, stages, size, batch)`: timm's Lite with the
  package weights (`lite_timm`) on those images, NCHW float32 per stage.
- `metrics(scores, maps, split)`: image AUROC / AUPRC, pooled pixel AUROC,
  per defect kind (each kind's images against the test normals), with
  scikit-learn, as our `ganad_jax.evaluation` defines them.
- `machine()`: the CPU, thread count and library versions for the JSON.
- `write_json(path, record)`.
"""

import json
import os
import platform
import sys
import time

import numpy as np
import torch
from torch.nn import functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lite_timm  # pylint: disable=wrong-import-position


def fail(message: str) -> None:
  """One line on stderr, exit status 1 (a refused input)."""
  print(f"error: {message}", file=sys.stderr)
  sys.exit(1)


def load_split(export_dir: str, seed: int) -> dict:
  """{x_train, x_val, x_test (uint8 NHWC), y_test, kinds_test, masks_test} of one seed."""
  path = os.path.join(export_dir, f"tiles_seed{seed}.npz")
  if not os.path.isfile(path):
    fail(f"{path} not found (run lite_export.py with --seeds including {seed})")
  with np.load(path) as data:
    return {k: data[k] for k in data.files}


def export_record(export_dir: str) -> dict:
  with open(os.path.join(export_dir, "export.json")) as f:
    return json.load(f)


def lite_features(model: torch.nn.Module, images: np.ndarray, stages: tuple[str, ...], size: int,
                  batch: int = 32) -> dict[str, torch.Tensor]:
  """{stage: (N, C, h, w) float32} of uint8 images through the Lite backbone at `size`."""
  out: dict[str, list] = {k: [] for k in stages}
  for i in range(0, len(images), batch):
    feats = lite_timm.stage_features(model, lite_timm.preprocess(images[i:i + batch], size), stages)
    for k in stages:
      out[k].append(feats[k])
  return {k: torch.cat(v) for k, v in out.items()}


def upsample(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """(N, h, w) -> (N, H, W), bilinear (align_corners=False): a map at the masks' size."""
  if tuple(maps.shape[1:]) == tuple(size):
    return maps
  t = torch.from_numpy(np.ascontiguousarray(maps, np.float32))[:, None]
  return F.interpolate(t, size=size, mode="bilinear", align_corners=False)[:, 0].numpy()


def metrics(scores: np.ndarray, maps: np.ndarray | None, split: dict) -> dict:
  """Image AUROC / AUPRC, pooled pixel AUROC and per-kind image AUROC of one run."""
  from sklearn import metrics as skm  # pylint: disable=import-outside-toplevel
  y = split["y_test"].astype(int)
  out = {"image_auroc": float(skm.roc_auc_score(y, scores)),
         "image_auprc": float(skm.average_precision_score(y, scores)), "per_kind": {}}
  kinds = split["kinds_test"]
  normal = y == 0
  for kind in sorted(set(kinds[~normal].tolist())):
    sel = normal | (kinds == kind)
    out["per_kind"][kind] = {"image_auroc": float(skm.roc_auc_score(y[sel], scores[sel])),
                             "n": int((kinds == kind).sum())}
  if maps is not None and "masks_test" in split:
    masks = split["masks_test"]
    maps = upsample(maps, masks.shape[1:])
    out["pixel_auroc"] = float(skm.roc_auc_score(masks.ravel(), maps.ravel()))
  return out


def machine(threads: int) -> dict:
  import anomalib  # pylint: disable=import-outside-toplevel
  import timm  # pylint: disable=import-outside-toplevel
  cpu = platform.processor()
  try:
    with open("/proc/cpuinfo") as f:
      cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
  except (OSError, StopIteration):
    pass
  return {"cpu": cpu, "cores_visible": os.cpu_count(), "torch_threads": threads,
          "load_average_at_start": list(os.getloadavg()), "python": platform.python_version(),
          "torch": torch.__version__, "timm": timm.__version__, "anomalib": anomalib.__version__,
          "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def write_json(path: str, record: dict) -> None:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w") as f:
    json.dump(record, f, indent=1)
