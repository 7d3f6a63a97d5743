r"""Scoring FLOPs per sample of one or more configs' methods, by XLA's cost analysis.

  python experiments/score_flops.py \
      --configs=configs/fanogan_digits.py,configs/anogan_digits.py --json_out=/tmp/flops.json

For each config: its method built for the config's image shape, a state from
`init` (FLOPs do not depend on the weights), and `profiling.compiled_flops` of
the jitted `score` on a batch of `--batch` images, divided by the batch size.
XLA's cost analysis counts the body of a loop once, not once per iteration
(a latent search's 500 steps are one `while`), so for a method with a latent
search (AnoGAN: `config.anogan.search`) the line also gives the search as
steps x restarts x `latent_search.flops_per_sample_step` (one step's forward
and backward through G and f), and "per_sample" is the larger of the two.
One JSON object per config: config, method, compiled, search (or null),
per_sample.
"""

import json
import os

from absl import flags
import jax
import numpy as np

from ganad_jax import cli
from ganad_jax import configs
from ganad_jax import latent_search
from ganad_jax import methods
from ganad_jax import profiling
from ganad_jax.methods import anogan

_CONFIGS = flags.DEFINE_list("configs", None, "Config files (configs/*.py[:arg]).")
_BATCH = flags.DEFINE_integer("batch", 64, "Images per scored batch.")
_JSON_OUT = flags.DEFINE_string("json_out", None, "Also write the lines to this JSON file.")
flags.mark_flag_as_required("configs")


def _load(spec: str):
  path, _, arg = spec.partition(":")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"--configs: no config file {path!r}.")
  name = os.path.splitext(os.path.basename(path))[0]
  return configs.sibling_config(os.path.abspath(path), name, arg or None)


def _search_flops(config, method_state, shape, x) -> float | None:
  """steps x restarts x one search step's FLOPs per sample; None without a search."""
  if config.method != "anogan":
    return None
  search = config.anogan.search
  nets = anogan.Networks(config, shape)
  generate_fn, feature_fn = anogan.search_fns(nets, method_state, search.feature_layer)
  per_step = latent_search.flops_per_sample_step(generate_fn, feature_fn, x,
                                                 int(config.model.nz), float(search.lam))
  return float(search.steps * search.restarts * per_step)


def main(argv):
  del argv
  lines = []
  for spec in _CONFIGS.value:
    config = _load(spec)
    configs.validate(config)
    shape = (config.data.image_size, config.data.image_size, config.data.channels)
    method = methods.make(config, shape)
    x = np.random.default_rng(0).uniform(-1, 1, (_BATCH.value,) + shape).astype(np.float32)
    state = jax.jit(method.init)(jax.random.key(0), x)
    compiled = profiling.compiled_flops(method.score, state, x, jax.random.key(1)) / len(x)
    search = _search_flops(config, state, shape, x)
    line = {"config": spec, "method": config.method, "compiled": compiled, "search": search,
            "per_sample": max(compiled, search or 0.0)}
    print(json.dumps(line))
    lines.append(line)
  if _JSON_OUT.value:
    with open(_JSON_OUT.value, "w", encoding="utf-8") as f:
      json.dump(lines, f, indent=1)


if __name__ == "__main__":
  cli.run_main(main)
