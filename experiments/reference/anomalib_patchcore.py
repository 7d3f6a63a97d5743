r"""anomalib's PatchCore on the Lite package weights, on our tiles splits: AUROC per seed, JSON.

  nice -n 10 /work/peers/bin/python experiments/reference/anomalib_patchcore.py \
      --export_dir=/tmp/peers/export --seeds=0,1,2 --coreset_ratio=0.01 \
      --json_out=/tmp/peers/anomalib_patchcore.json

anomalib 2.7.0's own `PatchcoreModel` (models/image/patchcore/torch_model.py),
unchanged: its `TimmFeatureExtractor` on timm's `tf_efficientnet_lite0` with
layers `blocks.2` + `blocks.4` (our stage3 + stage5: the last stride-8 and
stride-16 stages, as configs/patchcore_magnetic_tile.py), built with
`pre_trained=False` and then given the efficientnet-lite0 package weights
(`lite_timm`; `lite_check.py` shows every stage equal to ours within 7e-6
relative). Its 3x3 average pooling, bilinear upsampling of the second layer,
`subsample_embedding` (KCenterGreedy on a SparseRandomProjection, eps 0.9),
nearest-neighbour search, reweighted score (num_neighbors 9) and map
(nearest upsampling to the input, Gaussian blur sigma 4) are anomalib's.

Inputs: `lite_export.py`'s split of each seed (train = train/good less our
seeded validation normals, test = test/*), 8-bit, preprocessed as ours (gray
-> RGB, antialiased bilinear resize to 224, (v - 127) / 128). The map (224 px)
is upsampled bilinearly to the masks' 256 px for the pixel AUROC. The seed
sets `torch.manual_seed` (the projection and the coreset's first centre).
"""

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import anomalib_common as common  # pylint: disable=wrong-import-position
import lite_timm  # pylint: disable=wrong-import-position

LAYERS = ("blocks.2", "blocks.4")  # timm's module names of our stage3 and stage5.


def build(variant: str, num_neighbors: int):
  """anomalib's PatchcoreModel on timm's tf_efficientnet_<variant> holding the package weights."""
  from anomalib.models.image.patchcore.torch_model import PatchcoreModel  # pylint: disable=import-outside-toplevel
  model = PatchcoreModel(layers=list(LAYERS), backbone=f"tf_efficientnet_{variant}",
                         pre_trained=False, num_neighbors=num_neighbors)
  load_weights(model.feature_extractor.feature_extractor, variant)
  return model


def load_weights(net: torch.nn.Module, variant: str) -> None:
  """The package weights into a timm features_only net (a strict subset of the full model)."""
  full = lite_timm.load_lite(variant).state_dict()
  own = net.state_dict()
  missing = [k for k in own if k not in full or full[k].shape != own[k].shape]
  if missing:
    raise ValueError(f"{len(missing)} keys of the feature net not in the weights (first {missing[0]})")
  net.load_state_dict({k: full[k] for k in own}, strict=True)


def run(args, seed: int, export: dict) -> dict:
  split = common.load_split(args.export_dir, seed)
  size = int(export["input_size"])
  torch.manual_seed(seed)
  model = build(args.variant, args.num_neighbors)
  model.train()
  t0 = time.time()
  with torch.no_grad():
    for i in range(0, len(split["x_train"]), args.batch):
      model(lite_timm.preprocess(split["x_train"][i:i + args.batch], size))
  t_embed = time.time() - t0
  patches = sum(int(e.shape[0]) for e in model.embedding_store)
  t1 = time.time()
  model.subsample_embedding(args.coreset_ratio)
  t_coreset = time.time() - t1
  model.eval()
  scores, maps = [], []
  t2 = time.time()
  with torch.no_grad():
    for i in range(0, len(split["x_test"]), args.batch):
      out = model(lite_timm.preprocess(split["x_test"][i:i + args.batch], size))
      scores.append(out.pred_score.numpy())
      maps.append(out.anomaly_map[:, 0].numpy())
  t_score = time.time() - t2
  scores, maps = np.concatenate(scores), np.concatenate(maps)
  result = common.metrics(scores, maps, split)
  result.update(seed=seed, train_images=int(len(split["x_train"])), patches=patches,
                bank_rows=int(model.memory_bank.shape[0]), dim=int(model.memory_bank.shape[1]),
                embed_s=t_embed, coreset_s=t_coreset, score_s=t_score, wall_s=time.time() - t0)
  print(f"seed {seed}: image AUROC {result['image_auroc']:.4f}, pixel AUROC "
        f"{result['pixel_auroc']:.4f}, bank {result['bank_rows']} x {result['dim']} of {patches} "
        f"patches; embed {t_embed:.0f} s, coreset {t_coreset:.0f} s, score {t_score:.0f} s",
        flush=True)
  return result


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--export_dir", required=True)
  p.add_argument("--json_out", required=True)
  p.add_argument("--seeds", default="0,1,2")
  p.add_argument("--variant", default="lite0")
  p.add_argument("--coreset_ratio", type=float, default=0.01)
  p.add_argument("--num_neighbors", type=int, default=9)
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--threads", type=int, default=1)
  a = p.parse_args()
  if not 0 < a.coreset_ratio <= 1:
    common.fail(f"--coreset_ratio={a.coreset_ratio}: must be in (0, 1]")
  torch.set_num_threads(a.threads)
  export = common.export_record(a.export_dir)
  record = {"command": "python " + " ".join(sys.argv), "model": "anomalib PatchcoreModel",
            "backbone": f"tf_efficientnet_{a.variant} + efficientnet-{a.variant} package weights",
            "layers": list(LAYERS), "coreset_ratio": a.coreset_ratio,
            "num_neighbors": a.num_neighbors, "input_size": export["input_size"],
            "data": export["config"]["data"], "machine": common.machine(a.threads), "runs": []}
  for seed in [int(s) for s in a.seeds.split(",")]:
    record["runs"].append(run(a, seed, export))
    common.write_json(a.json_out, record)
  for key in ("image_auroc", "image_auprc", "pixel_auroc"):
    v = [r[key] for r in record["runs"]]
    record[key] = {"mean": float(np.mean(v)), "std": float(np.std(v))}
    print(f"{key}: {np.mean(v):.4f} ± {np.std(v):.4f}")
  common.write_json(a.json_out, record)


if __name__ == "__main__":
  main()
