r"""Training throughput (images/s after compilation) of one method's jitted train step.

  python experiments/bench_train.py --method=ganomaly --image_size=32 --channels=1 \
      --batch=64 --json_out=/tmp/bench_train.json \
      --anomalib --torch_python=/path/to/venv_with_torch_and_anomalib/bin/python

Times `runner.make_train_step` (the trainer's own step: gathers its batch from
the device-resident training set, then runs `method.train_step`) on random
images in [-1, 1], `--steps` steps per repeat after a warm-up that compiles.

With --anomalib, the same is timed for anomalib's PyTorch GANomaly in a
subprocess of `--torch_python` (torch and anomalib are never dependencies of
ganad_jax): anomalib's own `GanomalyModel`, `GeneratorLoss` and
`DiscriminatorLoss` classes, two Adam optimisers, and the body of its
Lightning `training_step` (generator step, then discriminator step on the
detached fake), without Lightning's loop around it. Its modules are loaded
from their files so that `anomalib.data` (Lightning, OpenCV, ...) need not
import: the two names `torch_model.py` takes from it are only used for inputs
whose side is not a power of two and for inference outputs.
"""

import json
import subprocess
import sys
import time

from absl import flags
import jax
import numpy as np

from ganad_jax import cli
from ganad_jax import configs
from ganad_jax import methods
from ganad_jax import run_outputs
from ganad_jax import runner

FLAGS = flags.FLAGS
flags.DEFINE_string("method", "ganomaly", "Method to time (any registered name).")
flags.DEFINE_integer("image_size", 32, "Image side (power of two >= 16).")
flags.DEFINE_integer("channels", 1, "Image channels.")
flags.DEFINE_integer("batch", 64, "Batch size.")
flags.DEFINE_integer("nz", 100, "Latent size.")
flags.DEFINE_integer("base_features", 64, "DCGAN base features.")
flags.DEFINE_integer("steps", 30, "Timed steps per repeat.")
flags.DEFINE_integer("warmup", 3, "Untimed steps before timing (the first compiles).")
flags.DEFINE_integer("repeats", 3, "Timed repeats; the best is reported (and all are kept).")
flags.DEFINE_string("compute_dtype", "float32", "config.compute_dtype.")
flags.DEFINE_string("conv_lowering", "auto", "config.conv_lowering ('xla': XLA's own convs).")
flags.DEFINE_bool("anomalib", False, "Also time anomalib's PyTorch GANomaly training step.")
flags.DEFINE_string("torch_python", sys.executable, "Interpreter with torch and anomalib.")
flags.DEFINE_integer("seed", 0, "Seed of the data and the nets.")
flags.DEFINE_string("json_out", "", "Write the results here as JSON.")

# Runs in --torch_python (torch + anomalib, no jax). Prints one JSON line.
_ANOMALIB_SCRIPT = r"""
import importlib.util, json, math, os, sys, time, types
import torch
import anomalib

args = json.loads(sys.argv[1])
torch.manual_seed(args["seed"])
folder = os.path.join(os.path.dirname(anomalib.__file__), "models", "image", "ganomaly")

def pad_nextpow2(batch):
  side = max(batch.shape[-2:])
  assert side == 2 ** math.ceil(math.log2(side)) and batch.shape[-2] == batch.shape[-1], batch.shape
  return batch

data_stub = types.ModuleType("anomalib.data")
data_stub.InferenceBatch = dict
image_stub = types.ModuleType("anomalib.data.utils.image")
image_stub.pad_nextpow2 = pad_nextpow2
sys.modules.update({"anomalib.data": data_stub, "anomalib.data.utils": types.ModuleType("u"),
                    "anomalib.data.utils.image": image_stub})

def load(name):
  spec = importlib.util.spec_from_file_location("ganomaly_" + name, os.path.join(folder, name + ".py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module

torch_model, loss = load("torch_model"), load("loss")
size, channels, batch = args["image_size"], args["channels"], args["batch"]
model = torch_model.GanomalyModel(input_size=(size, size), num_input_channels=channels,
                                  n_features=args["base_features"], latent_vec_size=args["nz"])
model.train()
generator_loss, discriminator_loss = loss.GeneratorLoss(1, 50, 1), loss.DiscriminatorLoss()
d_opt = torch.optim.Adam(model.discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
g_opt = torch.optim.Adam(model.generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
data = torch.rand(batch * 8, channels, size, size) * 2 - 1

def step(i):
  images = data[(i % 8) * batch:(i % 8 + 1) * batch]
  padded, fake, latent_i, latent_o = model(images)  # anomalib's training_step, verbatim:
  pred_real, _ = model.discriminator(padded)
  pred_fake, _ = model.discriminator(fake)
  g_loss = generator_loss(latent_i, latent_o, padded, fake, pred_real, pred_fake)
  g_opt.zero_grad()
  g_loss.backward(retain_graph=True)
  g_opt.step()
  pred_fake, _ = model.discriminator(fake.detach())
  d_loss = discriminator_loss(pred_real, pred_fake)
  d_opt.zero_grad()
  d_loss.backward()
  d_opt.step()
  return float(g_loss), float(d_loss)

for i in range(args["warmup"]):
  step(i)
times = []
for _ in range(args["repeats"]):
  start = time.perf_counter()
  for i in range(args["steps"]):
    losses = step(i)
  times.append(time.perf_counter() - start)
assert all(math.isfinite(v) for v in losses), losses
print(json.dumps({"seconds": times, "torch": torch.__version__, "anomalib": anomalib.__version__,
                  "torch_threads": torch.get_num_threads(), "final_losses": losses}))
"""


def time_ganad_jax() -> dict:
  config = configs.base_config(FLAGS.method)
  config.model.nz = FLAGS.nz
  config.model.base_features = FLAGS.base_features
  config.compute_dtype = FLAGS.compute_dtype
  config.conv_lowering = FLAGS.conv_lowering
  shape = (FLAGS.image_size, FLAGS.image_size, FLAGS.channels)
  method = methods.make(config, shape)
  if method.train_step is None:
    raise ValueError(f"Method {FLAGS.method!r} has no train step (it is fitted in closed form).")
  keys = jax.random.split(jax.random.key(FLAGS.seed), 4)
  train_x = jax.random.uniform(keys[0], (FLAGS.batch * 8, *shape), minval=-1.0, maxval=1.0)
  state = jax.jit(method.init)(keys[1], train_x[:FLAGS.batch])
  step = jax.jit(runner.make_train_step(method, FLAGS.batch), donate_argnums=0)
  t0 = time.perf_counter()
  state, metrics = step(state, train_x, keys[2], keys[3])
  jax.block_until_ready(metrics)
  compile_seconds = time.perf_counter() - t0
  for _ in range(FLAGS.warmup - 1):
    state, metrics = step(state, train_x, keys[2], keys[3])
  jax.block_until_ready(metrics)
  times = []
  for _ in range(FLAGS.repeats):
    start = time.perf_counter()
    for _ in range(FLAGS.steps):
      state, metrics = step(state, train_x, keys[2], keys[3])
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - start)
  loss = float(metrics["loss"])
  if not np.isfinite(loss):
    raise FloatingPointError(f"Non-finite loss {loss} while timing {FLAGS.method}.")
  return {"seconds": times, "first_step_with_compile_s": compile_seconds, "final_loss": loss,
          "jax": jax.__version__, "device": f"{jax.device_count()} x {jax.devices()[0].device_kind}"}


def time_anomalib() -> dict:
  args = {k: getattr(FLAGS, k) for k in ("image_size", "channels", "batch", "nz", "base_features",
                                         "steps", "warmup", "repeats", "seed")}
  proc = subprocess.run([FLAGS.torch_python, "-c", _ANOMALIB_SCRIPT, json.dumps(args)],
                        capture_output=True, text=True, check=False)
  if proc.returncode != 0:
    raise RuntimeError(f"anomalib run failed with {FLAGS.torch_python}:\n{proc.stderr[-3000:]}")
  return json.loads(proc.stdout.strip().splitlines()[-1])


def images_per_second(run: dict) -> float:
  return FLAGS.steps * FLAGS.batch / min(run["seconds"])


def main(argv):
  del argv
  results = {"config": {k: getattr(FLAGS, k) for k in (
      "method", "image_size", "channels", "batch", "nz", "base_features", "steps", "repeats",
      "compute_dtype", "conv_lowering")}}
  results["ganad_jax"] = time_ganad_jax()
  results["ganad_jax"]["images_per_s"] = images_per_second(results["ganad_jax"])
  if FLAGS.anomalib:
    if FLAGS.method != "ganomaly":
      raise ValueError("--anomalib compares against anomalib's GANomaly: use --method=ganomaly.")
    results["anomalib"] = time_anomalib()
    results["anomalib"]["images_per_s"] = images_per_second(results["anomalib"])
    results["ratio_ganad_jax_over_anomalib"] = (results["ganad_jax"]["images_per_s"]
                                                / results["anomalib"]["images_per_s"])
  text = json.dumps(results, indent=2)
  print(text)
  if FLAGS.json_out:
    run_outputs.write_json(FLAGS.json_out, results)


if __name__ == "__main__":
  cli.run_main(main)
