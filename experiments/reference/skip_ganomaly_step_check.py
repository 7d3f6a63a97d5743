r"""Same weights, same batches: our Skip-GANomaly train_step beside the reference's optimize_params.

  PYTHONPATH=$PWD nice -n 19 python experiments/reference/skip_ganomaly_step_check.py \
      --reference_dir=/work/wt/ref_skip-ganomaly --config=configs/ganomaly_mnist.py --steps=20

Our discriminator cannot hold the reference's weights: the reference's
`BasicDiscriminator` ends its DCGAN conv stack with a k4 conv to nz (100)
channels at 1x1 (its f_D, no activation) and a 3x3 conv (pad 1, on a 1x1 map,
so only the centre tap acts) to one logit, where ours (`dcgan.Discriminator`)
goes from the 4x4 map straight to the logit and takes f_D = that 4x4 map
(`penultimate`). So this check swaps, here only, a Flax copy of the
reference's discriminator (`ReferenceD`, f_D its nz-dim output) into our
`skip_ganomaly.make` through `gan.image_discriminator`; everything else (our
U-Net, `g_terms`, `gan.reconstruction_gan`'s order and D step, Adam, score)
is ours, unchanged. The reference's netG / netD weights (its `init_net`,
manualseed --seed) are copied in (conv kernels OIHW -> HWIO; transposed-conv
kernels (in, out, kh, kw) -> (kh, kw, in, out) flipped in space; BatchNorm
weight / bias / running stats).

Two reference sides are stepped beside ours on the same batches (the first
--steps of our training split of --seed, in our [-1, 1] range), each from the
same initial weights:
  reference   its code as the driver runs it (zero noise,
              allow_mutation_on_saved_tensors; skip_ganomaly_reference.py):
              its D loss is err_d_real + err_d_fake + err_g_lat;
  reference without err_g_lat in D   the same, with `err_g_lat` replaced by 0
              while `update_netd` runs (so its D loss and its re-init test
              are ours: BCE(D(x), 1) + BCE(D(G(x)), 0)). NOT the reference's
              behaviour: it isolates that one term.
Printed: the forward pass at step 0 (train mode), then per step each loss of
ours and of both sides (G terms are unweighted, as ours: the reference's
err_g_con is w_con x L1) and the largest relative difference; then the
eval-mode scores of the test split after the last step.
"""

import copy
import os
import sys
from typing import Any

from absl import app
from absl import flags
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from sklearn import metrics as sk_metrics

from ganad_jax import data as gdata
from ganad_jax.methods import base
from ganad_jax.methods import gan
from ganad_jax.methods import skip_ganomaly
from ganad_jax.models import dcgan

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import skip_ganomaly_reference as drv  # pylint: disable=wrong-import-position  # Its flags.

_STEPS = flags.DEFINE_integer("steps", 20, "Training steps to compare.")
_SEED = flags.DEFINE_integer("seed", 0, "Split seed and the reference's manualseed.")


class ReferenceD(nn.Module):
  """The reference's BasicDiscriminator in Flax: image -> (logit (N,), {"penultimate": (N,1,1,nz)})."""
  base_features: int
  nz: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = True):
    conv = lambda f, name: nn.Conv(f, (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)),
                                   use_bias=False, kernel_init=dcgan.conv_init, name=name)
    stages = dcgan.num_halvings(x.shape[1])
    x = nn.leaky_relu(conv(self.base_features, "conv0")(x), 0.2)
    for i in range(1, stages):
      x = conv(self.base_features * 2**i, f"conv{i}")(x)
      x = nn.leaky_relu(dcgan.batch_norm(train, f"bn{i}")(x), 0.2)
    feat = nn.Conv(self.nz, (4, 4), padding="VALID", use_bias=False, kernel_init=dcgan.conv_init,
                   name="conv_feat")(x)
    logit = nn.Conv(1, (3, 3), padding=((1, 1), (1, 1)), use_bias=False,
                    kernel_init=dcgan.conv_init, name="conv_cls")(feat)
    return logit.reshape(-1), {"penultimate": feat}


def unet_names(levels: int) -> list[str]:
  """Our U-Net's layer names in the reference's module order (pre-order of its nested blocks)."""
  names = ["down0"]
  for i in range(1, levels):
    names += [f"down{i}"] + ([f"down_bn{i}"] if i < levels - 1 else [])
  for i in reversed(range(1, levels)):
    names += [f"up{i}", f"up_bn{i}"]
  return names + ["up0"]


def copy_weights(tmodule, names: list[str], params: dict, stats: dict):
  """(params, batch_stats) of our net with the torch module's weights, layer by layer."""
  import torch.nn as tnn  # pylint: disable=import-outside-toplevel
  params = jax.tree_util.tree_map(np.array, params)
  stats = jax.tree_util.tree_map(np.array, stats)
  layers = [m for m in tmodule.modules()
            if isinstance(m, (tnn.Conv2d, tnn.ConvTranspose2d, tnn.BatchNorm2d))]
  if len(layers) != len(names):
    raise ValueError(f"{len(layers)} torch layers, {len(names)} names")
  for t, name in zip(layers, names):
    if isinstance(t, tnn.BatchNorm2d):
      params[name] = {"scale": t.weight.detach().numpy().copy(),
                      "bias": t.bias.detach().numpy().copy()}
      stats[name] = {"mean": t.running_mean.numpy().copy(), "var": t.running_var.numpy().copy()}
      continue
    w = t.weight.detach().numpy()
    if isinstance(t, tnn.ConvTranspose2d):
      kernel = np.ascontiguousarray(np.transpose(w, (2, 3, 0, 1))[::-1, ::-1])
    else:
      kernel = np.transpose(w, (2, 3, 1, 0))
    if kernel.shape != params[name]["kernel"].shape:
      raise ValueError(f"{name}: torch {kernel.shape} vs ours {params[name]['kernel'].shape}")
    params[name] = {"kernel": kernel}
    if t.bias is not None:
      params[name]["bias"] = t.bias.detach().numpy().copy()
  return params, stats


def reference_side(ref_model, opt, drop_lat_in_d: bool):
  """A reference Skipganomaly prepared as the driver does; optionally without err_g_lat in D."""
  import torch  # pylint: disable=import-outside-toplevel
  ref = ref_model.Skipganomaly(opt, None)
  drv.prepare(ref, opt.batchsize, opt.nc, opt.isize)
  ref.total_steps = 0
  if drop_lat_in_d:
    update_netd = ref.update_netd

    def update_netd_without_lat():
      lat, ref.err_g_lat = ref.err_g_lat, torch.zeros(())
      try:
        update_netd()
      finally:
        ref.err_g_lat = lat
    ref.update_netd = update_netd_without_lat
  return ref


def reference_losses(ref, w_con: float) -> dict[str, float]:
  e = ref.get_errors()
  return {"g_loss": e["err_g"], "g_adv": e["err_g_adv"], "g_con": e["err_g_con"] / w_con,
          "g_lat": e["err_g_lat"], "d_loss": float(ref.err_d_real + ref.err_d_fake),
          "err_d": e["err_d"]}


def main(argv):
  del argv
  import torch  # pylint: disable=import-outside-toplevel
  torch.set_num_threads(1)
  config = drv.FLAGS.config.value
  drv.check_config(config)
  ref_model = drv.import_reference(drv.FLAGS.reference_dir.value)
  splits = gdata.load(config.data, _SEED.value)
  batch = int(config.train.batch_size)
  x_train = np.asarray(splits.train.x, np.float32)
  opt = drv.make_opt(config, x_train.shape[-1], _SEED.value, "/tmp/skip_ganomaly_step_check",
                     "check")
  refs = {"ref": reference_side(ref_model, opt, False),
          "ref_no_lat_in_d": reference_side(ref_model, opt, True)}
  first = refs["ref"]
  for other in refs.values():  # manualseed: both sides start from the same weights.
    for a, b in zip(first.netg.state_dict().values(), other.netg.state_dict().values()):
      assert torch.equal(a, b)

  nz, features = int(config.model.nz), int(config.model.base_features)
  gan.image_discriminator = lambda cfg, dtype: ReferenceD(features, nz, dtype)  # This check only.
  method = skip_ganomaly.make(config, x_train.shape[1:])
  state = method.init(jax.random.PRNGKey(0), jnp.asarray(x_train[:batch]))
  levels = int(np.log2(x_train.shape[1]))
  d_names = ["conv0"] + [n for i in range(1, levels - 2) for n in (f"conv{i}", f"bn{i}")] + [
      "conv_feat", "conv_cls"]
  p_g, s_g = copy_weights(first.netg, unet_names(levels), state["params"]["g"],
                          state["batch_stats"]["g"])
  p_d, s_d = copy_weights(first.netd, d_names, state["params"]["d"], state["batch_stats"]["d"])
  params = jax.tree_util.tree_map(jnp.asarray, {"g": p_g, "d": p_d})
  state = dict(state, params=params,
               batch_stats=jax.tree_util.tree_map(jnp.asarray, {"g": s_g, "d": s_d}),
               opt_state={k: base.adam(config.optim).init(params[k]) for k in ("g", "d")})

  xb = x_train[:batch]
  (ox, ostats) = base.apply(method_generator(config, x_train), state["params"]["g"],
                            state["batch_stats"]["g"], jnp.asarray(xb), train=True)
  del ostats
  with torch.no_grad():
    tx_ = copy.deepcopy(first.netg)(drv.common.to_torch(xb, "ours"))
  print("forward (train mode), max |ours - reference|: x_hat %.2e" % np.abs(
      np.transpose(np.asarray(ox), (0, 3, 1, 2)) - tx_.numpy()).max())

  step = jax.jit(method.train_step)
  names = ("g_loss", "g_adv", "g_con", "g_lat", "d_loss")
  w_con = float(config.skip_ganomaly.w_con)
  print("\n| step | " + " | ".join(f"{n}: ours / ref / ref without lat in D" for n in names)
        + " | ref err_d (with lat) | max rel diff: ref | ref without lat in D |")
  print("|---|" + "---|" * (len(names) + 3))
  for i in range(_STEPS.value):
    xb = x_train[i * batch:(i + 1) * batch]
    state, m = step(state, jnp.asarray(xb), jax.random.PRNGKey(i))
    losses = {}
    for key, ref in refs.items():
      ref.set_input((drv.common.to_torch(xb, "ours"), torch.zeros(batch, dtype=torch.long)))
      ref.optimize_params()
      losses[key] = reference_losses(ref, w_con)
    rel = {k: max(abs(float(m[n]) - losses[k][n]) / max(abs(losses[k][n]), 1e-12) for n in names)
           for k in refs}
    print(f"| {i + 1} | " + " | ".join(
        f"{float(m[n]):.6g} / {losses['ref'][n]:.6g} / {losses['ref_no_lat_in_d'][n]:.6g}"
        for n in names) + f" | {losses['ref']['err_d']:.6g} | {rel['ref']:.1e} | "
        f"{rel['ref_no_lat_in_d']:.1e} |")
    if i == 0:
      moved = {}
      for key, ref in refs.items():
        for net, tmod, layer_names in (("g", ref.netg, unet_names(levels)),
                                       ("d", ref.netd, d_names)):
          theirs, _ = copy_weights(tmod, layer_names, state["params"][net],
                                   state["batch_stats"][net])
          diffs = np.concatenate([np.abs(np.asarray(a) - np.asarray(b)).ravel() for a, b in zip(
              jax.tree_util.tree_leaves(state["params"][net]), jax.tree_util.tree_leaves(theirs))])
          moved[f"{key} {net}"] = (int((diffs > 0.5 * float(config.optim.lr)).sum()), diffs.size)
  print("\nAfter step 1, parameters differing from ours by more than lr / 2 (Adam's first "
        "step is lr * sign(grad)): " + ", ".join(f"{k} {n:,} of {size:,}"
                                                  for k, (n, size) in moved.items()))

  x_test = np.asarray(splits.test.x, np.float32)
  y = np.asarray(splits.test.y)
  outs = [method.score(state, jnp.asarray(x_test[j:j + 256]), None)
          for j in range(0, len(x_test), 256)]
  ours = {k: np.concatenate([np.asarray(o[k]) for o in outs])
          for k in ("score", "score_recon", "score_feature")}
  line = (f"eval-mode scores after {_STEPS.value} steps: AUROC ours "
          f"{sk_metrics.roc_auc_score(y, ours['score']):.4f}")
  for key, ref in refs.items():
    rec, lat = drv.honest_terms(ref.netg, ref.netd, drv.common.to_torch(x_test, "ours"), 256)
    theirs = 0.9 * rec + 0.1 * lat
    line += (f"; {key}: AUROC {sk_metrics.roc_auc_score(y, theirs):.4f}, max |diff| score "
             f"{np.abs(ours['score'] - theirs).max():.2e} (median {np.median(theirs):.3g}), rec "
             f"{np.abs(ours['score_recon'] - rec).max():.2e} (median {np.median(rec):.3g}), "
             f"feature {np.abs(ours['score_feature'] - lat).max():.2e} "
             f"(median {np.median(lat):.3g})")
  print(line)


def method_generator(config, x_train):
  from ganad_jax.models import unet  # pylint: disable=import-outside-toplevel
  return unet.UNet(x_train.shape[-1], int(config.model.base_features), jnp.float32)


if __name__ == "__main__":
  flags.mark_flags_as_required(["reference_dir", "config"])
  app.run(main)
