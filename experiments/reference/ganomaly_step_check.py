r"""Same weights, same batches: our GANomaly train_step beside the reference's optimize_params.

  PYTHONPATH=$PWD nice -n 19 python experiments/reference/ganomaly_step_check.py \
      --reference_dir=/work/wt/reference_src --config=configs/ganomaly_mnist.py --steps=20

Seed noise hides small deviations in a table of AUROCs; this removes it. The
reference's `Ganomaly` (samet-akcay/ganomaly, its own init with manualseed
--seed) is built, its netG / netD weights are copied into our GANomaly state
(conv kernels OIHW -> HWIO; transposed-conv kernels (in, out, kh, kw) ->
(kh, kw, in, out) flipped in space, since Flax's ConvTranspose does not flip;
BatchNorm weight / bias / running stats), and both are fed the same batches
(the first --steps batches of our training split of --seed, in order, in our
[-1, 1] range). Printed per step: each loss of both sides and the largest
relative difference; then the eval-mode scores of the test split after the
last step (max abs difference and both AUROCs). Forward outputs at step 0 are
compared first (train mode).

Agreement to float32 round-off for the first steps shows the two compute the
same G loss, D loss, update order and Adam step; over many steps the two
trajectories drift apart (GAN training amplifies round-off), so look at the
first steps.
"""

import os
import sys

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np
from sklearn import metrics as sk_metrics

from ganad_jax import data as gdata
from ganad_jax import methods

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ganomaly_reference as drv  # pylint: disable=wrong-import-position  # Its --reference_dir, --config.

_STEPS = flags.DEFINE_integer("steps", 20, "Training steps to compare.")
_SEED = flags.DEFINE_integer("seed", 0, "Split seed and the reference's manualseed.")


def torch_layers(module):
  """Conv / ConvTranspose / BatchNorm submodules of a torch module, in order."""
  import torch.nn as tnn  # pylint: disable=import-outside-toplevel
  return [m for m in module.modules()
          if isinstance(m, (tnn.Conv2d, tnn.ConvTranspose2d, tnn.BatchNorm2d))]


def flax_layers(params: dict, prefix=()):
  """(path, leaf dict) of every layer of a Flax params tree, in the nets' call order."""
  out = []
  leafy = {k: v for k, v in params.items() if not isinstance(v, dict)}
  if leafy:
    out.append((prefix, params))
    return out

  def order(name):  # encoder1 < decoder < encoder2; conv0 < conv1 < bn1 < conv2 ...; *_out last.
    top = {"encoder1": 0, "decoder": 1, "encoder2": 2, "encoder": 0}
    if name in top:
      return (top[name], 0, "")
    digits = "".join(ch for ch in name if ch.isdigit())
    kind = 0 if name.startswith("conv") else 1
    return (1, int(digits) if digits else 10**6, kind)
  for k in sorted(params, key=order):
    out.extend(flax_layers(params[k], prefix + (k,)))
  return out


def copy_weights(tmodule, params: dict, stats: dict):
  """New (params, batch_stats) for our net holding the torch module's weights."""
  import torch.nn as tnn  # pylint: disable=import-outside-toplevel
  params = jax.tree_util.tree_map(np.asarray, params)
  params = jax.tree_util.tree_map(lambda a: a, params)  # Copy.
  stats = jax.tree_util.tree_map(np.asarray, stats)
  tl, fl = torch_layers(tmodule), flax_layers(params)
  if len(tl) != len(fl):
    raise ValueError(f"{len(tl)} torch layers, {len(fl)} Flax layers")
  for t, (path, leaf) in zip(tl, fl):
    node_p, node_s = params, stats
    for k in path[:-1]:
      node_p, node_s = node_p[k], node_s.get(k, {})
    name = path[-1]
    if isinstance(t, tnn.BatchNorm2d):
      node_p[name] = {"scale": t.weight.detach().numpy().copy(),
                      "bias": t.bias.detach().numpy().copy()}
      node_s[name] = {"mean": t.running_mean.numpy().copy(), "var": t.running_var.numpy().copy()}
      continue
    w = t.weight.detach().numpy()
    if isinstance(t, tnn.ConvTranspose2d):
      kernel = np.transpose(w, (2, 3, 0, 1))[::-1, ::-1]
    else:
      kernel = np.transpose(w, (2, 3, 1, 0))
    if kernel.shape != leaf["kernel"].shape:
      raise ValueError(f"{path}: torch {kernel.shape} vs ours {leaf['kernel'].shape}")
    node_p[name] = {"kernel": np.ascontiguousarray(kernel)}
  return params, stats


def main(argv):
  del argv
  import torch  # pylint: disable=import-outside-toplevel
  torch.set_num_threads(1)
  ref_model = drv.import_reference(drv._REFERENCE_DIR.value)  # pylint: disable=protected-access

  config = flags.FLAGS.config
  splits = gdata.load(config.data, _SEED.value)
  batch = int(config.train.batch_size)
  x_train = np.asarray(splits.train.x, np.float32)
  opt = drv.make_opt(config, x_train.shape[-1], _SEED.value, "/tmp/ganomaly_step_check", "check")
  ref = ref_model.Ganomaly(opt, {})
  ref.total_steps = 0

  method = methods.make(config, x_train.shape[1:])
  state = method.init(jax.random.PRNGKey(0), jnp.asarray(x_train[:batch]))
  p_g, s_g = copy_weights(ref.netg, state["params"]["g"], state["batch_stats"]["g"])
  p_d, s_d = copy_weights(ref.netd, state["params"]["d"], state["batch_stats"]["d"])
  params = {"g": p_g, "d": p_d}
  stats = {"g": s_g, "d": s_d}
  state = dict(state, params=jax.tree_util.tree_map(jnp.asarray, params),
               batch_stats=jax.tree_util.tree_map(jnp.asarray, stats))
  state["opt_state"] = {k: method_tx_init(config, state["params"][k]) for k in ("g", "d")}

  # Forward check, train mode, first batch.
  from ganad_jax.methods import base  # pylint: disable=import-outside-toplevel
  from ganad_jax.methods import ganomaly  # pylint: disable=import-outside-toplevel
  gen = ganomaly.Generator(tuple(x_train.shape[1:]), int(config.model.nz),
                           int(config.model.base_features), tuple(config.model.mlp_widths),
                           jnp.float32)
  xb = x_train[:batch]
  (ox, oz, ozh), _ = base.apply(gen, state["params"]["g"], state["batch_stats"]["g"],
                                jnp.asarray(xb), train=True)
  with torch.no_grad():
    tx_, tz, tzh = ref.netg(drv.to_torch(xb, "ours"))
  print("forward (train mode), max |ours - reference|: x_hat %.2e, z %.2e, z_hat %.2e" % (
      np.abs(np.transpose(np.asarray(ox), (0, 3, 1, 2)) - tx_.numpy()).max(),
      np.abs(np.asarray(oz) - tz.reshape(batch, -1).numpy()).max(),
      np.abs(np.asarray(ozh) - tzh.reshape(batch, -1).numpy()).max()))

  step = jax.jit(method.train_step)
  names = {"err_d": "d_loss", "err_g": "g_loss", "err_g_adv": "g_adv", "err_g_con": "g_con",
           "err_g_enc": "g_enc"}
  print("| step | " + " | ".join(f"{v} ours / ref" for v in names.values()) + " | max rel diff |")
  print("|---|" + "---|" * (len(names) + 1))
  for i in range(_STEPS.value):
    xb = x_train[i * batch:(i + 1) * batch]
    state, m = step(state, jnp.asarray(xb), jax.random.PRNGKey(i))
    ref.set_input((drv.to_torch(xb, "ours"), torch.zeros(batch, dtype=torch.long)))
    ref.optimize_params()
    e = ref.get_errors()
    rel = max(abs(float(m[v]) - e[k]) / max(abs(e[k]), 1e-12) for k, v in names.items())
    print(f"| {i + 1} | " + " | ".join(f"{float(m[v]):.6g} / {e[k]:.6g}" for k, v in names.items())
          + f" | {rel:.1e} |")
    if i == 0:
      flips = {}
      for net, tmod in (("g", ref.netg), ("d", ref.netd)):
        theirs, _ = copy_weights(tmod, state["params"][net], state["batch_stats"][net])
        diffs = np.concatenate([np.abs(np.asarray(a) - np.asarray(b)).ravel() for a, b in zip(
            jax.tree_util.tree_leaves(state["params"][net]), jax.tree_util.tree_leaves(theirs))])
        flips[net] = (int((diffs > 0.5 * float(config.optim.lr)).sum()), diffs.size,
                      float(np.median(diffs)))

  print("\nAfter step 1 (Adam's first update is lr * sign(grad) almost everywhere, so an element "
        "whose gradient is at round-off level can move the other way): parameters differing by "
        "more than lr / 2, of all, and the median difference: " + ", ".join(
            f"{net} {n:,} of {size:,} (median {med:.1e})" for net, (n, size, med) in flips.items()))
  x_test = np.asarray(splits.test.x, np.float32)
  ours = np.concatenate([np.asarray(method.score(state, jnp.asarray(x_test[j:j + 256]), None)["score"])
                         for j in range(0, len(x_test), 256)])
  theirs = drv.honest_scores(ref.netg, drv.to_torch(x_test, "ours"), 256)
  y = np.asarray(splits.test.y)
  print(f"eval-mode scores after {_STEPS.value} steps: max |diff| {np.abs(ours - theirs).max():.2e} "
        f"(median score {np.median(theirs):.3g}); AUROC ours {sk_metrics.roc_auc_score(y, ours):.4f}, "
        f"reference {sk_metrics.roc_auc_score(y, theirs):.4f}")


def method_tx_init(config, params):
  from ganad_jax.methods import base  # pylint: disable=import-outside-toplevel
  return base.adam(config.optim).init(params)


if __name__ == "__main__":
  flags.mark_flags_as_required(["reference_dir", "config"])
  app.run(main)
