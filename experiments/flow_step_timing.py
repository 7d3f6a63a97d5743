r"""Train-step images/s of a flow method: features computed once (`embed` outside) vs inside the step.

  python experiments/flow_step_timing.py --config=configs/fastflow_magnetic_tile.py --batch=8 --steps=3

Both on the same random images at the config's data size: "once" times the
jitted `train_step` on features embedded beforehand (what `features.once`
does, the embedding cost paid once per run); "in_step" times one jitted
program that embeds the batch and steps (what ensembles and patches do).
Prints one JSON line: images/s of each and the one-off embedding images/s.
"""

import json
import time

from absl import flags
import jax
import numpy as np
from ml_collections import config_flags

from ganad_jax import cli
from ganad_jax import methods

config_flags.DEFINE_config_file("config", None, "A flow method's config.", lock_config=False)
_BATCH = flags.DEFINE_integer("batch", 8, "Images per train step.")
_STEPS = flags.DEFINE_integer("steps", 3, "Timed steps of each (after one compiling step).")


def _timed(fn, state, batch, steps):
  state, m = fn(state, batch, jax.random.key(0))  # Compiles.
  jax.block_until_ready(m)
  start = time.perf_counter()
  for i in range(steps):
    state, m = fn(state, batch, jax.random.key(i))
  jax.block_until_ready(m)
  return time.perf_counter() - start, state


def main(argv):
  del argv
  config = flags.FLAGS.config
  size = config.data.image_size
  shape = (size, size, 1)
  method = methods.make(config, shape)
  if method.embed is None:
    raise ValueError(f"method {config.method!r} has no embed: nothing to compare.")
  x = np.random.default_rng(0).uniform(-1, 1, (_BATCH.value, *shape)).astype(np.float32)
  state = jax.jit(method.init)(jax.random.key(0), x[:1])
  embed = jax.jit(method.embed)
  jax.block_until_ready(embed(state, x))
  start = time.perf_counter()
  features = jax.block_until_ready(embed(state, x))
  embed_s = time.perf_counter() - start
  once, state = _timed(jax.jit(method.train_step), state, features, _STEPS.value)
  in_step = jax.jit(lambda s, b, k: method.train_step(s, method.embed(s, b), k))
  inside, _ = _timed(in_step, state, x, _STEPS.value)
  n = _BATCH.value * _STEPS.value
  print(json.dumps({"method": config.method, "batch": _BATCH.value, "steps": _STEPS.value,
                    "once_images_per_s": n / once, "in_step_images_per_s": n / inside,
                    "embed_images_per_s": _BATCH.value / embed_s}))


if __name__ == "__main__":
  cli.run_main(main)
