r"""Same weights, same features: our flow's training loss and steps beside anomalib's dump.

  # anomalib's side (peers venv): initial weights, permutations, features, losses
  nice -n 10 /work/peers/bin/python experiments/reference/anomalib_flow_step.py \
      --export_dir=/tmp/peers/export --out_dir=/tmp/peers/step --methods=fastflow
  # ours (ganad_jax venv)
  PYTHONPATH=$PWD nice -n 10 python experiments/reference/flow_step_compare.py \
      --dump_dir=/tmp/peers/step --method=fastflow --config=configs/fastflow_magnetic_tile.py

Loads `<method>.npz` / `.json` of `anomalib_flow_step.py`: the features
(NHWC, exactly what anomalib was fed), anomalib's initial parameters (torch
layout, converted: conv OIHW -> HWIO, LayerNorm (C, H, W) -> (H, W, C),
AllInOneBlock global_scale / global_offset (1, C, 1, 1) -> (C,)) and its
fixed permutations. Our permutations are trace-time constants drawn from
(seed, channels) (`flows/coupling.py`), so `coupling.permutation` is
replaced, for this process only, by a lookup of anomalib's: block j of
input i has seed 1000 i + j in our `Flow` (CFlow's soft permutations are
anomalib's rotation matrices, y = R u, as ours). Then:
- fastflow: our loss at those weights against anomalib's first-step loss,
  and --steps of our `train_step` on the same batch against anomalib's
  losses before each update (its Adam: lr 1e-3, weight decay 1e-5; the
  config's optimiser must match: printed);
- cflow: our `loss` (the mean over levels of -logsigmoid(log p / C) over
  every location) against the same over anomalib's decoders at the initial
  weights; the training steps are not compared, since each side shuffles
  its fibers with its own RNG (anomalib's order is in the dump).

Tolerance: --rtol (default 1e-4 relative: float32 sums of ~10^5 terms in
another order) on each loss. Exit status 1 beyond it. Methods: fastflow
and cflow (`ganad_jax.methods.<name>.build` -> (method, loss)).
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
from ganad_jax.flows import coupling

_CONFIG = config_flags.DEFINE_config_file("config", None, "Our config of the method.")
_DUMP = flags.DEFINE_string("dump_dir", None, "anomalib_flow_step.py's --out_dir.")
_METHOD = flags.DEFINE_enum("method", "fastflow", ["fastflow", "cflow"], "The flow compared.")
_RTOL = flags.DEFINE_float("rtol", 1e-4, "Relative tolerance on each loss.")
_STEPS = flags.DEFINE_integer("steps", 0, "Steps compared; 0 = every loss in the dump.")


def conv(p, prefix):
  return {"kernel": np.transpose(p[prefix + ".weight"], (2, 3, 1, 0)), "bias": p[prefix + ".bias"]}


def fastflow_params(p: dict, layers: tuple[str, ...], steps: int) -> dict:
  """anomalib FastflowModel state -> our fastflow params {norm_<s>, flow_<s>}."""
  out = {}
  for i, name in enumerate(layers):
    out[f"norm_{name}"] = {"scale": np.transpose(p[f"norms.{i}.weight"], (1, 2, 0)),
                           "bias": np.transpose(p[f"norms.{i}.bias"], (1, 2, 0))}
    flow = {}
    for j in range(steps):
      b = f"fast_flow_blocks.{i}.module_list.{j}"
      flow[f"block{j}"] = {"global_scale": p[b + ".global_scale"].ravel(),
                           "global_offset": p[b + ".global_offset"].ravel(),
                           "subnet": {"conv1": conv(p, b + ".subnet.0"),
                                      "conv2": conv(p, b + ".subnet.2")}}
    out[f"flow_{name}"] = flow
  return out


def dense(p, prefix):
  return {"kernel": np.transpose(p[prefix + ".weight"]), "bias": p[prefix + ".bias"]}


def cflow_params(p: dict, layers: tuple[str, ...], blocks: int) -> dict:
  """anomalib's cflow decoders -> our cflow params {stage: {block<j>: ...}}."""
  out = {}
  for i, name in enumerate(layers):
    out[name] = {}
    for j in range(blocks):
      b = f"decoders.{i}.module_list.{j}"
      out[name][f"block{j}"] = {"global_scale": p[b + ".global_scale"].ravel(),
                                "global_offset": p[b + ".global_offset"].ravel(),
                                "subnet": {"fc1": dense(p, b + ".subnet.0"),
                                           "fc2": dense(p, b + ".subnet.2")}}
  return out


def use_permutations(perms: dict, prefix: str) -> None:
  """Our `coupling.permutation(c, seed, soft)` -> anomalib's perm of block seed % 1000 of input seed // 1000."""
  def lookup(channels, seed, soft):
    perm = perms[f"perm/{prefix}.{seed // 1000}.module_list.{seed % 1000}"]
    want = (channels, channels) if soft else (channels,)
    if perm.shape != want:
      raise ValueError(f"permutation of seed {seed}: {perm.shape}, expected {want}")
    return perm
  coupling.permutation = lookup


def same_tree(ours, theirs, path=""):
  """ValueError naming the first path whose keys or shapes differ."""
  if isinstance(ours, dict):
    if set(ours) != set(theirs):
      raise ValueError(f"{path or 'params'}: ours {sorted(ours)}, converted {sorted(theirs)}")
    for k in ours:
      same_tree(ours[k], theirs[k], f"{path}/{k}")
  elif tuple(np.shape(ours)) != tuple(np.shape(theirs)):
    raise ValueError(f"{path}: ours {np.shape(ours)}, converted {np.shape(theirs)}")


def main(argv):
  del argv
  config = _CONFIG.value
  name = _METHOD.value
  dump = os.path.join(_DUMP.value or "", name)
  if not os.path.isfile(dump + ".npz"):
    raise FileNotFoundError(f"{dump}.npz not found (run anomalib_flow_step.py first)")
  with open(dump + ".json") as f:
    rec = json.load(f)
  data = dict(np.load(dump + ".npz"))
  torch_params = {k[6:]: v for k, v in data.items() if k.startswith("param/")}
  layers = tuple(rec["stages"])
  section = config[name]
  section.layers = layers
  if name == "fastflow":
    from ganad_jax.methods import fastflow as module  # pylint: disable=import-outside-toplevel
    blocks, prefix = rec["settings"]["flow_steps"], "fast_flow_blocks"
    if int(section.flow_steps) != blocks:
      raise ValueError(f"fastflow.flow_steps={section.flow_steps}, the dump's {blocks}")
    params = fastflow_params(torch_params, layers, blocks)
  else:
    from ganad_jax.methods import cflow as module  # pylint: disable=import-outside-toplevel
    blocks, prefix = rec["settings"]["coupling_blocks"], "decoders"
    for field, theirs in (("coupling_blocks", blocks), ("clamp", rec["settings"]["clamp_alpha"]),
                          ("fiber_batch", rec["settings"]["fiber_batch_size"])):
      if section[field] != theirs:
        raise ValueError(f"cflow.{field}={section[field]}, the dump's {theirs}")
    params = cflow_params(torch_params, layers, blocks)
  use_permutations(data, prefix)
  method, loss_fn = module.build(config, (int(config.data.image_size),) * 2 + (1,))
  features = {n: jnp.asarray(data[f"input{i}"]) for i, n in enumerate(layers)}
  state = method.init(jax.random.PRNGKey(0), None)
  same_tree(jax.tree_util.tree_map(np.asarray, state["params"]), params)
  params = jax.tree_util.tree_map(jnp.asarray, params)
  ours = [float(loss_fn(params, features))]
  if name == "fastflow":
    from ganad_jax.methods import flow_features  # pylint: disable=import-outside-toplevel
    tx = flow_features.adam(config, float(section.weight_decay))  # fastflow.build's.
    state = dict(state, params=params, opt_state=tx.init(params))
    print(f"optimiser: lr {config.optim.lr}, b1 {config.optim.b1}, b2 {config.optim.b2}, "
          f"weight decay {section.weight_decay} (anomalib: {rec['settings']['optimizer']})")
    theirs = rec["losses"][:_STEPS.value or None]
    step = jax.jit(method.train_step)
    for _ in theirs[1:]:
      state, _ = step(state, features, jax.random.PRNGKey(0))
      ours.append(float(loss_fn(state["params"], features)))
  else:  # The loss over every fiber at the initial weights (the fiber order is each side's RNG's).
    theirs = [float(np.mean(rec["loss_all_fibers_init"]))]
    print("per level, anomalib: " + ", ".join(f"{v:.7g}" for v in rec["loss_all_fibers_init"]))
  worst = 0.0
  print("| step | ours | anomalib | relative difference |\n|---|---|---|---|")
  for i, (a, b) in enumerate(zip(ours, theirs)):
    rel = abs(a - b) / max(abs(b), 1e-12)
    worst = max(worst, rel)
    print(f"| {i + 1} | {a:.7g} | {b:.7g} | {rel:.2e} |")
  print(f"largest relative difference {worst:.2e} (tolerance {_RTOL.value:g}): "
        f"{'within' if worst <= _RTOL.value else 'BEYOND'}")
  sys.exit(0 if worst <= _RTOL.value else 1)


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "dump_dir"])
  cli.run_main(main)
