r"""Runs the reference Skip-GANomaly (samet-akcay/skip-ganomaly, PyTorch) on ganad_jax's own splits.

The reference code is NOT part of ganad_jax: fetch it anywhere and point
--reference_dir at the checkout (the folder holding `lib/models/skipganomaly.py`):

  git clone https://github.com/samet-akcay/skip-ganomaly /work/wt/ref_skip-ganomaly  # b33bd55

  PYTHONPATH=$PWD nice -n 19 python experiments/reference/skip_ganomaly_reference.py \
      --reference_dir=/work/wt/ref_skip-ganomaly --config=configs/ganomaly_mnist.py \
      --classes=0,1,2,7,9 --seeds=0,1,2 --value_range=ours \
      --json_out=/work/runs/skipref_theirs/skip_ganomaly_ours.json

The config is the one our benchmark runs with `--methods=skip_ganomaly`:
its `skip_ganomaly` section, `model`, `optim`, `train` and `data`. Needs torch,
torchvision, scikit-learn, scipy and matplotlib (imported by the reference's
modules); seaborn and pandas, which it imports but uses only to plot a
histogram this driver never asks for, are replaced by empty modules during
its import when missing. For each (class, seed) the data are `ganad_jax.data.load(config.data,
seed)` (the training split; our validation normals are unused), NHWC [-1, 1]
-> NCHW torch tensors in --value_range `ours` ([-1, 1], the reference's CIFAR /
folder transform) or `reference` (its MNIST `Normalize((0.1307,), (0.3081,))`).

What runs is the reference's own `lib.models.skipganomaly.Skipganomaly`: its
U-Net `define_G` and `BasicDiscriminator` `define_D` with their `init_net`
init, its losses (BCE, L1, `l2_loss`), its two Adams, its `optimize_params`
(G step, then D step on err_d_real + err_d_fake + err_g_lat), its D re-init
below 1e-5 (`reinit_d`, `weights_init`), its `test()`. Options from our
config: isize `data.image_size`, nc, nz `model.nz`, ngf = ndf
`model.base_features`, batchsize `train.batch_size`, lr / beta1 `optim`,
w_adv / w_con / w_lat `skip_ganomaly.*`. Fields the reference hard-codes
(score lambda 0.9 with an L2 residual, re-init threshold 1e-5, Adam beta2
0.999, its one discriminator) must have those values in the config, or a
ValueError names the field. Run-time changes from outside (no file of the
checkout is edited):
  - `tqdm` of `lib.models.basemodel` becomes a pass-through;
  - the training loader is capped at our `train.num_steps` (full epochs of
    the shuffled, drop-last loader, the last one cut short);
  - `model.noise`: the reference adds `self.noise` to G's training input, a
    `torch.empty((batchsize, 3, isize, isize))` buffer never filled
    (`set_input` is never called with noise=True). With 1-channel images the
    sum broadcasts to 3 channels and G's first conv fails, so the driver
    replaces it by zeros of the input's shape (the empty buffer read as
    all zeros here, and "no noise" is what its test() feeds G);
  - `optimize_params` runs inside `torch.autograd.graph.
    allow_mutation_on_saved_tensors()`: backward_d back-propagates err_g_lat,
    whose graph runs through G, after optimizer_g.step() changed G's
    weights in place; current torch refuses that (RuntimeError "modified by
    an inplace operation"), the torch 1.2 the reference pins did not. The
    gradients it puts on G there are zeroed before G's next step; D's
    gradient does not depend on G's weights (only on the fake batch), so
    D's update is what the pinned torch computed;
  - `optimize_params` and `reinit_d` are wrapped to record the losses after
    every step (plus mean D(x), D(G(x)) and err_d without the latent term,
    comparable with our d_loss) and to count re-initialisations.

Evaluation after every epoch (the reference's `train()`: one epoch, then `test()`):
  honest   deep copies of netG and netD in eval mode (BatchNorm running
           statistics), the expression of the reference's test():
           0.9 * mean((x - G(x))^2) + 0.1 * mean((f(x) - f(G(x)))^2), f the
           discriminator's `feat` output (nz x 1 x 1), raw, sklearn AUROC;
           the reported number is the LAST epoch's;
  train_bn_last  the reference's `test()` at the last epoch: both nets in
           train mode (each test batch normalised by its own statistics),
           test loader unshuffled with the normals first and the anomalies
           last (the order of its MNIST `get_mnist_anomaly_dataset`; here our
           test split stably sorted by label), scores min-max scaled;
  train_bn_shuffled  the same `test()` on the same test split, shuffled
           (a separate generator seeded by the seed): train-mode BN without
           the sorted order's batches of only normals or only anomalies;
  paper    the best of the per-epoch `test()` AUROCs (what its `train()`
           keeps as best_auc and saves weights for: chosen on test labels).
Both nets' BatchNorm running statistics are restored after each `test()`
(its train-mode passes move them with test batches; the reference never reads
them, our honest score does).

JSON (--json_out): as ganomaly_reference.py's (`compare.py` reads both).
"""

import copy
import importlib
import os
import sys
import time
import types

from absl import app
from absl import flags
import numpy as np

from ganad_jax import data as gdata

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # pylint: disable=wrong-import-position

FLAGS = common.define_flags("samet-akcay/skip-ganomaly (the folder holding lib/models/)",
                            "/tmp/skip_ganomaly_reference_out")

# Values the reference hard-codes: config field -> (value, where).
HARD_CODED = {
    "skip_ganomaly.score_lambda": (0.9, "test(): error = 0.9*rec + 0.1*lat"),
    "skip_ganomaly.score_rec": ("l2", "test(): rec = mean((x - G(x))^2)"),
    "skip_ganomaly.reinit_d_below": (1e-5, "update_netd(): err_d < 1e-5"),
    "optim.b2": (0.999, "Adam betas=(beta1, 0.999)"),
    "model.discriminator": ("dcgan", "define_D(): BasicDiscriminator"),
}


def check_config(config) -> None:
  """ValueError naming the field where our config asks for what the reference cannot do."""
  for field, (value, where) in HARD_CODED.items():
    section, name = field.split(".")
    got = config[section][name]
    if got != value:
      raise ValueError(f"config.{field}={got!r}: the reference hard-codes {value!r} ({where}).")


def import_reference(reference_dir: str):
  """Imports `lib.models.skipganomaly`, its tqdm a pass-through; stubs seaborn / pandas if absent.

  The stubs are in `sys.modules` only while the reference imports (scikit-learn
  looks pandas up there later and must not find an empty module).
  """
  import torchvision.utils  # pylint: disable=import-outside-toplevel,unused-import  # Before the stubs.
  stubs = []
  for name in ("seaborn", "pandas"):  # Only its plot_hist branch uses them.
    try:
      importlib.import_module(name)
    except ImportError:
      sys.modules[name] = types.ModuleType(name)
      stubs.append(name)
  try:
    return common.import_reference(reference_dir, "lib.models.skipganomaly",
                                   ("lib.models.basemodel",))
  finally:
    for name in stubs:
      del sys.modules[name]


def make_opt(config, nc: int, seed: int, outf: str, name: str):
  """The reference's options Namespace (the options.py fields it reads) from our config."""
  section = config.skip_ganomaly
  return types.SimpleNamespace(
      dataset="ganad_jax", dataroot="", batchsize=int(config.train.batch_size), workers=0,
      droplast=True, isize=int(config.data.image_size), nc=nc, nz=int(config.model.nz),
      ngf=int(config.model.base_features), ndf=int(config.model.base_features), extralayers=0,
      device="cpu", gpu_ids=[], ngpu=1, name=name, model="skipganomaly", display_server="",
      display_port=0, display_id=0, display=False, verbose=False, outf=outf, manualseed=seed,
      abnormal_class=int(config.data.class_index), metric="roc", print_freq=100,
      save_image_freq=10**12, save_test_images=False, load_weights=False, resume="",
      phase="train", iter=0, niter=0, niter_decay=100, lr_policy="lambda",
      beta1=float(config.optim.b1), lr=float(config.optim.lr), w_adv=float(section.w_adv),
      w_con=float(section.w_con), w_lat=float(section.w_lat), isTrain=True)


def honest_terms(netg, netd, x, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
  """(rec, lat) of test()'s score with copies of netG and netD in eval mode, raw, per image."""
  import torch  # pylint: disable=import-outside-toplevel
  g, d = copy.deepcopy(netg).eval(), copy.deepcopy(netd).eval()
  recs, lats = [], []
  with torch.no_grad():
    for i in range(0, len(x), batch_size):
      xb = x[i:i + batch_size]
      fake = g(xb)
      _, feat_real = d(xb)
      _, feat_fake = d(fake)
      recs.append(torch.mean(torch.pow((xb - fake).reshape(len(xb), -1), 2), dim=1).numpy())
      lats.append(torch.mean(torch.pow((feat_real - feat_fake).reshape(len(xb), -1), 2),
                             dim=1).numpy())
  return np.concatenate(recs), np.concatenate(lats)


def honest_scores(netg, netd, x, batch_size: int) -> np.ndarray:
  """test()'s score, 0.9 * rec + 0.1 * lat (`honest_terms`), in eval mode."""
  rec, lat = honest_terms(netg, netd, x, batch_size)
  return 0.9 * rec + 0.1 * lat


def prepare(model, batch: int, nc: int, isize: int) -> None:
  """The run-time changes of the module docstring: zero noise, mutation-tolerant optimize."""
  import torch  # pylint: disable=import-outside-toplevel
  model.noise = torch.zeros((batch, nc, isize, isize), dtype=torch.float32)
  optimize = model.optimize_params

  def optimize_allowing_mutation():
    with torch.autograd.graph.allow_mutation_on_saved_tensors():
      optimize()

  model.optimize_params = optimize_allowing_mutation


def run_one(ref_model, config, seed: int, value_range: str) -> dict:
  """Trains the reference on our split of (config.data.class_index, seed); returns the record."""
  import torch  # pylint: disable=import-outside-toplevel
  t0 = time.time()
  splits = gdata.load(config.data, seed)
  x_train = common.to_torch(splits.train.x, value_range)
  y_test = np.asarray(splits.test.y, np.int64)
  x_test = common.to_torch(splits.test.x, value_range)
  nc, isize = int(x_train.shape[1]), int(x_train.shape[2])
  batch = int(config.train.batch_size)
  steps_per_epoch, num_steps, num_epochs = common.step_budget(config, len(x_train))
  opt = make_opt(config, nc, seed, FLAGS.outf.value,
                 f"class{config.data.class_index}_seed{seed}_{value_range}")
  opt.niter = num_epochs

  # Its load_data() builds the loaders before the model; BaseModel.__init__ then seeds
  # random, numpy and torch with manualseed and builds the nets; loader shuffles draw later.
  order = np.argsort(y_test, kind="stable")  # Its MNIST test set: normals, then anomalies.
  train_ds = torch.utils.data.TensorDataset(x_train, torch.zeros(len(x_train), dtype=torch.long))
  valid_ds = torch.utils.data.TensorDataset(x_test[torch.from_numpy(order)],
                                            torch.from_numpy(y_test[order]))
  data = types.SimpleNamespace(
      train=common.CappedLoader(torch.utils.data.DataLoader(
          train_ds, batch_size=batch, shuffle=True, num_workers=0, drop_last=True), [num_steps]),
      valid=torch.utils.data.DataLoader(valid_ds, batch_size=batch, shuffle=False,
                                        num_workers=0, drop_last=False))
  model = ref_model.Skipganomaly(opt, data)
  prepare(model, batch, nc, isize)
  steps, reinits = common.record_steps(model, lambda m: {
      "d_real": float(m.pred_real.mean()), "d_fake": float(m.pred_fake.mean()),
      "err_d_bce": float(m.err_d_real + m.err_d_fake)})
  # test() once more on a shuffled loader (own generator: the training shuffles stay the
  # reference's) separates train-mode BN from the sorted order's batches of pure anomalies.
  shuffled = torch.utils.data.DataLoader(
      valid_ds, batch_size=batch, shuffle=True, num_workers=0, drop_last=False,
      generator=torch.Generator().manual_seed(seed))

  def test_shuffled():
    sorted_loader, data.valid = data.valid, shuffled
    try:
      return {"train_bn_shuffled_auroc": float(model.test()["AUC"])}
    finally:
      data.valid = sorted_loader

  evaluation = common.train_and_evaluate(
      model, [model.netg, model.netd],
      lambda: honest_scores(model.netg, model.netd, x_test, int(config.eval.batch_size)),
      y_test, num_epochs, steps, "AUC", f"class {config.data.class_index} seed {seed}",
      test_shuffled)
  return {
      "class": int(config.data.class_index), "seed": seed, "value_range": value_range,
      "num_steps": len(steps), "num_epochs": num_epochs, "steps_per_epoch": steps_per_epoch,
      "sizes": {"train": len(x_train), "test": len(x_test), "test_anomalous": int(y_test.sum())},
      "input_min": float(x_train.min()), "input_max": float(x_train.max()),
      **evaluation, "d_reinits": reinits[0], "step_losses": steps, "final_losses": steps[-1],
      "wall_s": time.time() - t0,
  }


def main(argv):
  del argv
  check_config(FLAGS.config.value)
  ref_model = import_reference(FLAGS.reference_dir.value)
  common.main(FLAGS, "samet-akcay/skip-ganomaly",
              lambda config, seed, value_range: run_one(ref_model, config, seed, value_range))


if __name__ == "__main__":
  flags.mark_flags_as_required(["reference_dir", "config", "json_out"])
  app.run(main)
