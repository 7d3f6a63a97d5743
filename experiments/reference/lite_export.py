r"""Our side of the anomalib comparison: the tiles' splits and our Lite features, as .npz.

  PYTHONPATH=$PWD nice -n 10 python experiments/reference/lite_export.py \
      --config=configs/padim_magnetic_tile.py --config.pretrained.backbone=efficientnet-lite0 \
      --seeds=0,1,2 --out_dir=/tmp/peers/export

Runs in ganad_jax's own venv (jax); the anomalib drivers (`anomalib_*.py`)
run in the peers venv (torch, timm, anomalib, no jax) and read only these
files, so neither venv depends on the other.

Writes into --out_dir:

- `tiles_seed<s>.npz`, one per seed: the split of `ganad_jax.data.load(
  config.data, s)` (the `folder` protocol: train/good less the seeded
  validation normals for training, test/* for test) as 8-bit values:
  `x_train`, `x_val`, `x_test` uint8 (N, H, W, C) (our loader's [-1, 1] is
  v / 127.5 - 1 of these; the round trip is checked exactly), `y_test`
  int32 (1 = defective), `kinds_test` str, `masks_test` bool (N, H, W).
- `lite_features.npz`: the first --check_images training images of seed
  --seeds[0]: `images` uint8 as above, `resized` float32 (K, S, S, 3), our
  backbone input after gray -> RGB and our antialiased bilinear resize to
  S = the backbone's input size, still in [-1, 1]; and `feat_<stage>`
  float32 (K, h, w, c), NHWC, every stage of `backbone.load(
  config.pretrained).extract` (stem, stage1..7, head).
- `export.json`: the command, the config, the backbone's weights record
  (file, SHA-256, normalisation), input size, stage shapes, array shapes.
"""

import json
import os
import sys

from absl import flags
import jax
import jax.numpy as jnp
from ml_collections import config_flags
import numpy as np

from ganad_jax import cli
from ganad_jax import data as gdata
from ganad_jax.methods import backbone as backbone_lib

_CONFIG = config_flags.DEFINE_config_file("config", None, "A config of ours whose `data` and "
                                          "`pretrained` sections are used.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Split seeds to export.")
_OUT_DIR = flags.DEFINE_string("out_dir", None, "Where the .npz and export.json go.")
_CHECK_IMAGES = flags.DEFINE_integer("check_images", 16, "Images whose features are exported.")
_BATCH = flags.DEFINE_integer("batch", 8, "Images per backbone call.")


def to_uint8(x: np.ndarray, what: str) -> np.ndarray:
  """Our [-1, 1] images back to their 8-bit values; ValueError unless the round trip is exact."""
  v = np.rint((np.asarray(x, np.float64) + 1.0) * 127.5)
  if v.min() < 0 or v.max() > 255:
    raise ValueError(f"{what}: values outside [-1, 1]")
  back = (v / 127.5 - 1.0).astype(np.float32)
  err = float(np.abs(back - np.asarray(x, np.float32)).max()) if x.size else 0.0
  if err > 1e-6:
    raise ValueError(f"{what}: not v / 127.5 - 1 of 8-bit v (max error {err:.2e})")
  return v.astype(np.uint8)


def main(argv):
  del argv
  config = _CONFIG.value
  out_dir = _OUT_DIR.value
  if not out_dir:
    raise ValueError("--out_dir is required")
  seeds = [int(s) for s in _SEEDS.value]
  os.makedirs(out_dir, exist_ok=True)
  record = {"command": "python " + " ".join(sys.argv), "config": json.loads(config.to_json_best_effort()),
            "seeds": seeds, "splits": {}}
  first = None
  for seed in seeds:
    splits = gdata.load(config.data, seed)
    arrays = {f"x_{name}": to_uint8(getattr(splits, name).x, f"seed {seed} {name}")
              for name in ("train", "val", "test")}
    arrays["y_test"] = np.asarray(splits.test.y, np.int32)
    arrays["kinds_test"] = np.asarray(splits.test.kinds).astype(str)
    if splits.test.masks is not None:
      arrays["masks_test"] = np.asarray(splits.test.masks).reshape(
          arrays["x_test"].shape[:3]).astype(bool)
    np.savez(os.path.join(out_dir, f"tiles_seed{seed}.npz"), **arrays)
    record["splits"][str(seed)] = {k: list(v.shape) for k, v in arrays.items()}
    if first is None:
      first = np.asarray(splits.train.x[:_CHECK_IMAGES.value], np.float32)
    print(f"seed {seed}: " + ", ".join(f"{k} {v.shape}" for k, v in arrays.items()), flush=True)

  net = backbone_lib.load(config.pretrained)
  size = net.input_size

  @jax.jit
  def features(x):
    return net.extract(net.variables, x)

  @jax.jit
  def resized(x):  # What `extract` feeds the network, before the normalisation.
    x = jnp.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x
    return jax.image.resize(x, (x.shape[0], size, size, 3), "linear", antialias=True)

  out = {"images": to_uint8(first, "check images"), "resized": []}
  for i in range(0, len(first), _BATCH.value):
    xb = jnp.asarray(first[i:i + _BATCH.value])
    out["resized"].append(np.asarray(resized(xb)))
    for k, v in features(xb).items():
      out.setdefault(f"feat_{k}", []).append(np.asarray(v, np.float32))
  out = {k: (np.concatenate(v) if isinstance(v, list) else v) for k, v in out.items()}
  np.savez(os.path.join(out_dir, "lite_features.npz"), **out)
  record.update(backbone=net.name, weights=net.record, input_size=size,
                stages={k: list(v) for k, v in net.stages.items()},
                lite_features={k: list(v.shape) for k, v in out.items()},
                jax=jax.__version__)
  with open(os.path.join(out_dir, "export.json"), "w") as f:
    json.dump(record, f, indent=1)
  print(f"{len(first)} check images through {net.name} at {size}: "
        + ", ".join(f"{k} {tuple(v.shape[1:])}" for k, v in out.items()))


if __name__ == "__main__":
  cli.run_main(main)
