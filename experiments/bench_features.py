r"""Feature extraction with a pretrained backbone, Flax vs PyTorch on the same weights, and fit times.

  pip install -e '.[torch]'
  python experiments/bench_features.py --backbone=efficientnet-lite0 --batch=32 --steps=5 \
      --repeats=3 --json_out=/tmp/bench_features.json

Extraction: images/s of every stage output (stem, stages, head) for a batch of
random images at the backbone's native size, after a warm-up that compiles;
best of `--repeats`, each `--steps` batches, the two sides alternating in one
process on the same CPU. Flax: `methods/backbone.py`'s extract, jitted, with
XLA's own convolutions and with `config.conv_lowering` (what the methods'
scores run). PyTorch: the efficientnet-lite-pytorch model (lukemelas's code)
with the same .pth weights, eval mode, `torch.no_grad`, as many threads as
cores. EfficientNet-Lite0-2 only (their weights are the installed packages).

Fit: wall seconds of `method.fit` (its first call: compiling, feature
extraction of the training split, the Gaussians, and for the Gaussian
scorer the level selection on the validation normals) of the two tile configs, `configs/gaussian_pretrained_
magnetic_tile.py` and `configs/padim_magnetic_tile.py`, on `--tiles` (skipped
with a note when the folder is absent).
"""

import os
import time

from absl import flags
import jax
import ml_collections
import numpy as np

from ganad_jax import cli
from ganad_jax import configs
from ganad_jax import data
from ganad_jax import methods
from ganad_jax import pretrained
from ganad_jax import run_outputs
from ganad_jax.methods import backbone
from ganad_jax.xla_cpu import fast_conv

FLAGS = flags.FLAGS
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
flags.DEFINE_string("backbone", "efficientnet-lite0", "efficientnet-lite0, -lite1 or -lite2.")
flags.DEFINE_integer("batch", 32, "Images per batch.")
flags.DEFINE_integer("steps", 5, "Timed batches per repeat.")
flags.DEFINE_integer("repeats", 3, "Timed repeats per side; the best is reported, all are kept.")
flags.DEFINE_string("tiles", configs.shared_data_path(__file__, "magnetic_tile"),
                    "MVTec-style folder for the fit times; '' skips them.")
flags.DEFINE_string("json_out", "", "Write the results here as JSON.")


def _time(fn, batch) -> float:
  """Seconds for `--steps` calls of fn(batch), results fetched."""
  start = time.perf_counter()
  for _ in range(FLAGS.steps):
    fn(batch)
  return time.perf_counter() - start


def _torch_extract(name: str, weights: str):
  import torch  # pylint: disable=g-import-not-at-top  # The torch extra, for this side only.
  from efficientnet_lite_pytorch import EfficientNet  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(os.cpu_count())
  model = EfficientNet.from_pretrained(name, weights_path=weights).eval()

  def extract(batch):
    with torch.no_grad():
      x = torch.from_numpy(batch)
      x = model._swish(model._bn0(model._conv_stem(x)))  # pylint: disable=protected-access
      for block in model._blocks:  # pylint: disable=protected-access
        x = block(x)
      return model._swish(model._bn1(model._conv_head(x))).numpy()  # pylint: disable=protected-access
  return extract, torch.__version__


def _extraction() -> dict:
  cfg = configs.pretrained.pretrained_config()
  cfg.backbone = FLAGS.backbone
  net = backbone.load(cfg)
  size = net.input_size
  x = np.random.default_rng(0).uniform(-1, 1, (FLAGS.batch, size, size, 3)).astype(np.float32)
  # The torch side gets the same normalised input the Flax extract computes inside.
  x_torch = np.ascontiguousarray(((x * 127.5 + 0.5) / 128.0).transpose(0, 3, 1, 2))
  xla = jax.jit(net.extract)
  lowered = jax.jit(fast_conv.lowered(net.extract))
  variables = jax.device_put(net.variables)  # Resident, as torch's weights are.
  sides = {"flax_xla": lambda b: jax.block_until_ready(xla(variables, b)),
           "flax_conv_lowering": lambda b: jax.block_until_ready(lowered(variables, b))}
  inputs = {"flax_xla": x, "flax_conv_lowering": x, "torch": x_torch}
  torch_extract, torch_version = _torch_extract(
      FLAGS.backbone, str(pretrained.package_weights(FLAGS.backbone)))
  sides["torch"] = torch_extract
  for name, fn in sides.items():  # Warm-up: compiles the Flax programs.
    fn(inputs[name])
  seconds = {name: [] for name in sides}
  for _ in range(FLAGS.repeats):  # Alternating, so that a busy spell hits every side.
    for name, fn in sides.items():
      seconds[name].append(_time(fn, inputs[name]))
  rate = {name: FLAGS.steps * FLAGS.batch / min(s) for name, s in seconds.items()}
  return {"backbone": FLAGS.backbone, "input_size": size, "batch": FLAGS.batch,
          "steps": FLAGS.steps, "repeats_seconds": seconds, "images_per_s": rate,
          "flax_vs_torch": max(rate["flax_xla"], rate["flax_conv_lowering"]) / rate["torch"],
          "torch_version": torch_version}


def _fit_times() -> dict:
  if not FLAGS.tiles or not os.path.isdir(FLAGS.tiles):
    return {"skipped": f"no folder at {FLAGS.tiles!r}"}
  out = {}
  for name in ("gaussian_pretrained_magnetic_tile", "padim_magnetic_tile"):
    config = configs.sibling_config(os.path.join(_ROOT, "configs", f"{name}.py"), name)
    config.data.path = FLAGS.tiles
    config.pretrained.backbone = FLAGS.backbone
    splits = data.load(config.data, config.seed)
    method = methods.make(config, splits.train.x.shape[1:])
    state = method.init(jax.random.key(0), splits.train.x[:2])
    start = time.perf_counter()
    method.fit(state, splits.train.x, splits.val.x)
    out[name] = {"fit_seconds": time.perf_counter() - start, "train_images": len(splits.train.x),
                 "image_size": int(config.data.image_size)}
  return out


def main(argv):
  del argv
  run_outputs.quiet_orbax_logs()
  results = {"devices": f"{jax.device_count()} x {jax.devices()[0].platform}",
             "cpu_count": os.cpu_count(), "jax_version": jax.__version__,
             "extraction": _extraction(), "fit": _fit_times()}
  print(ml_collections.ConfigDict(results))
  if FLAGS.json_out:
    run_outputs.write_json(FLAGS.json_out, results)


if __name__ == "__main__":
  cli.run_main(main)
