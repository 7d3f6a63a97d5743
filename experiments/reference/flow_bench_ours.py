r"""Train-step throughput (images/s) of one of our flows on its cached features, beside anomalib's.

  PYTHONPATH=$PWD nice -n 10 python experiments/reference/flow_bench_ours.py \
      --config=configs/fastflow_magnetic_tile.py --batch=32 --steps=3 --repeats=2 \
      --json_out=/tmp/peers/bench_ours_fastflow.json
  nice -n 10 /work/peers/bin/python experiments/reference/anomalib_flow_bench.py \
      --method=fastflow --batch=32 --steps=3 --repeats=2 --json_out=/tmp/peers/bench_anomalib_fastflow.json

`experiments/bench_train.py` times a method's step on random images; a flow
with `Method.embed` trains on features computed once, so here: random images
in [-1, 1] (2 x --batch of them) go through the method's `embed` once, and
`runner.make_train_step(method, batch)` (the trainer's own step: gather a
batch of the cached features, `train_step`) is jitted and timed, --warmup
untimed steps first (the first compiles), then --repeats x --steps; the best
repeat's images/s (all kept). The feature shapes are the config's (printed;
anomalib_flow_bench.py's defaults are the same Lite0 shapes). JAX on the
CPU with XLA's threads; the JSON states the CPU, its load and jax's version.
"""

import os
import platform
import sys
import time

from absl import flags
import jax
from ml_collections import config_flags

from ganad_jax import cli
from ganad_jax import methods
from ganad_jax import run_outputs
from ganad_jax import runner

_CONFIG = config_flags.DEFINE_config_file("config", None, "Our config of the flow.")
_BATCH = flags.DEFINE_integer("batch", 0, "Batch size; 0 = the config's train.batch_size.")
_STEPS = flags.DEFINE_integer("steps", 3, "Timed steps per repeat.")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed steps first (the first compiles).")
_REPEATS = flags.DEFINE_integer("repeats", 2, "Timed repeats; the best is reported.")
_JSON = flags.DEFINE_string("json_out", "", "Write the result here as JSON.")


def cpu_name() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
  except (OSError, StopIteration):
    return platform.processor()


def main(argv):
  del argv
  config = _CONFIG.value
  batch = _BATCH.value or int(config.train.batch_size)
  shape = (int(config.data.image_size),) * 2 + (int(config.data.channels),)
  method = methods.make(config, shape)
  if method.embed is None:
    raise ValueError(f"method {config.method!r} has no embed: use experiments/bench_train.py")
  keys = jax.random.split(jax.random.key(0), 4)
  images = jax.random.uniform(keys[0], (2 * batch, *shape), minval=-1.0, maxval=1.0)
  state = method.init(keys[1], images[:batch])
  features = jax.jit(method.embed)(state, images)
  shapes = jax.tree_util.tree_map(lambda x: tuple(x.shape[1:]), features)
  step = jax.jit(runner.make_train_step(method, batch), donate_argnums=0)
  load_start = list(os.getloadavg())
  t0 = time.perf_counter()
  state, metrics = step(state, features, keys[2], keys[3])
  jax.block_until_ready(metrics)
  compile_s = time.perf_counter() - t0
  for _ in range(_WARMUP.value - 1):
    state, metrics = step(state, features, keys[2], keys[3])
  jax.block_until_ready(metrics)
  repeats = []
  for _ in range(_REPEATS.value):
    start = time.perf_counter()
    for _ in range(_STEPS.value):
      state, metrics = step(state, features, keys[2], keys[3])
    jax.block_until_ready(metrics)
    repeats.append(time.perf_counter() - start)
  ips = [batch * _STEPS.value / t for t in repeats]
  result = {"command": "python " + " ".join(sys.argv), "side": "ganad_jax", "method": config.method,
            "batch": batch, "features": jax.tree_util.tree_map(list, shapes,
                                                               is_leaf=lambda x: isinstance(x, tuple)),
            "steps": _STEPS.value, "warmup": _WARMUP.value, "compile_and_first_step_s": compile_s,
            "repeat_s": repeats, "images_per_s": max(ips), "images_per_s_all": ips,
            "loss": float(metrics["loss"]),
            "machine": {"cpu": cpu_name(), "cores_visible": os.cpu_count(),
                        "jax": jax.__version__, "backend": jax.default_backend(),
                        "load_average_at_start": load_start,
                        "load_average_at_end": list(os.getloadavg()),
                        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}}
  print(f"{config.method}: features {shapes}; {max(ips):.2f} images/s (best of {_REPEATS.value} x "
        f"{_STEPS.value} steps of {batch}; all {', '.join(f'{v:.2f}' for v in ips)})")
  if _JSON.value:
    run_outputs.write_json(_JSON.value, result)


if __name__ == "__main__":
  cli.run_main(main)
