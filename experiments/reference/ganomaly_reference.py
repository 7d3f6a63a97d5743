r"""Runs the reference GANomaly (samet-akcay/ganomaly, PyTorch) on ganad_jax's own splits.

The reference code is NOT part of ganad_jax: fetch it anywhere and point
--reference_dir at the checkout (the folder holding `lib/model.py`), e.g.

  git clone https://github.com/samet-akcay/ganomaly /work/wt/reference_src  # commit 78da4ea

  PYTHONPATH=$PWD nice -n 19 python experiments/reference/ganomaly_reference.py \
      --reference_dir=/work/wt/reference_src --config=configs/ganomaly_mnist.py \
      --classes=0,2 --seeds=0,1,2 --value_range=reference \
      --json_out=/work/runs/ref_theirs/reference_range.json

It needs torch (CPU is enough), scikit-learn, scipy and matplotlib (the
reference's `lib/evaluate.py` imports them), and nothing from the reference's
own data code: for each (class, seed) the data are `ganad_jax.data.load(
config.data, seed)`, the exact train / test arrays our benchmark uses (the
training split only; our validation normals are not used by the reference).
Images (NHWC in [-1, 1]) become NCHW torch tensors in the value range chosen
by --value_range:
  reference  the reference's MNIST transform, ToTensor then
             Normalize((0.1307,), (0.3081,)): [0, 1] -> about [-0.42, 2.82]
             (its decoder still ends in Tanh, so it cannot reach values > 1);
  ours       ganad_jax's [-1, 1] (the reference's own CIFAR / folder transform,
             Normalize((0.5,)*3, (0.5,)*3)).

What runs is the reference's own `lib.model.Ganomaly` (nets `lib.networks`,
init `weights_init`, losses `lib.loss.l2_loss` / nn.L1Loss / nn.BCELoss, its two
Adams, its `optimize_params` order G step then D step, its D re-init below
1e-5, its `test()`), with options taken from our config: isize
`data.image_size`, nc, nz `model.nz`, ngf = ndf `model.base_features`,
batchsize `train.batch_size`, lr / beta1 `optim`, w_adv / w_con / w_enc
`ganomaly.*`, device cpu. Patches, all applied here at run time (the checkout
is not edited):
  - `lib.model.tqdm` is replaced by a pass-through (no progress bars);
  - the training loader is capped so that the run makes exactly our
    `train.num_steps` steps (or `num_epochs` epochs when num_steps is 0):
    full epochs of the shuffled, drop-last loader, the last one cut short;
  - `optimize_params` is wrapped to record the reference's losses
    (err_d, err_g, err_g_adv, err_g_con, err_g_enc, mean D(x), mean D(G(x)))
    after every step, and `reinit_d` to count D re-initialisations.
Nothing in the model, loss or optimiser code is changed.

Evaluation, after every epoch (the reference's `train()` loop: train one
epoch, then `test()`):
  honest   a deep copy of netG in eval mode (BatchNorm running statistics),
           score mean((E1(x) - E2(G(x)))^2) over latent dims (the expression
           of the reference's `test()`), raw, AUROC by sklearn's
           roc_auc_score; the number reported is the LAST epoch's.
  paper    the reference's own `test()`: netG left in train mode (BatchNorm
           normalises each test batch by its own statistics), test loader
           shuffled (as its MNIST loader), scores min-max scaled over the test
           set, AUROC; the number the reference prints and saves weights for
           is the best over epochs (`best_auc`, chosen on test labels).
  train_bn_last  `test()`'s AUROC at the last epoch (separates the BatchNorm
           effect from the epoch selection).
The honest copy is taken before `test()` runs, and netG's BatchNorm running
statistics are restored after it: `test()`'s train-mode passes move them with
test batches (harmless to the reference's training, which never reads them,
but a last partial epoch of 3 steps, as for digit 1 at 300 steps, would
otherwise be scored with statistics that are 73 % test data).

JSON (--json_out): per class and seed the three AUROCs, the per-epoch values,
the per-step losses and their per-epoch means, D re-init count, wall times;
plus mean +- std over seeds per class.
"""

import copy
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

FLAGS = common.define_flags("samet-akcay/ganomaly (the folder holding lib/model.py)",
                            "/tmp/ganomaly_reference_out")
# The names ganomaly_step_check.py uses.
_REFERENCE_DIR = FLAGS.reference_dir
to_torch = common.to_torch


def import_reference(reference_dir: str):
  """Imports the reference's `lib.model` and replaces its `tqdm` by a pass-through."""
  return common.import_reference(reference_dir, "lib.model", ("lib.model",))


def make_opt(config, nc: int, seed: int, outf: str, name: str):
  """The reference's options Namespace (options.py fields it reads) from our config."""
  return types.SimpleNamespace(
      dataset="ganad_jax", dataroot="", batchsize=int(config.train.batch_size), workers=0,
      droplast=True, isize=int(config.data.image_size), nc=nc, nz=int(config.model.nz),
      ngf=int(config.model.base_features), ndf=int(config.model.base_features), extralayers=0,
      device="cpu", gpu_ids=[], ngpu=1, name=name, model="ganomaly", display_server="",
      display_port=0, display_id=0, display=False, outf=outf, manualseed=seed,
      abnormal_class=int(config.data.class_index), proportion=0.1, metric="roc",
      print_freq=100, save_image_freq=10**12, save_test_images=False, load_weights=False,
      resume="", phase="train", iter=0, niter=0, beta1=float(config.optim.b1),
      lr=float(config.optim.lr), w_adv=float(config.ganomaly.w_adv),
      w_con=float(config.ganomaly.w_con), w_enc=float(config.ganomaly.w_enc), isTrain=True)


def honest_scores(netg, x, batch_size: int) -> np.ndarray:
  """The reference's latent score with netG in eval mode (a copy; the original is untouched)."""
  import torch  # pylint: disable=import-outside-toplevel
  net = copy.deepcopy(netg).eval()
  out = []
  with torch.no_grad():
    for i in range(0, len(x), batch_size):
      _, latent_i, latent_o = net(x[i:i + batch_size])
      error = torch.mean(torch.pow((latent_i - latent_o), 2), dim=1)  # As in Ganomaly.test().
      out.append(error.reshape(-1).numpy())
  return np.concatenate(out)


def run_one(ref_model, config, seed: int, value_range: str) -> dict:
  """Trains the reference on our split of (config.data.class_index, seed); returns the record."""
  import torch  # pylint: disable=import-outside-toplevel
  t0 = time.time()
  splits = gdata.load(config.data, seed)
  x_train = to_torch(splits.train.x, value_range)
  x_test = to_torch(splits.test.x, value_range)
  y_test = np.asarray(splits.test.y, np.int64)
  nc = int(x_train.shape[1])
  batch = int(config.train.batch_size)
  steps_per_epoch, num_steps, num_epochs = common.step_budget(config, len(x_train))
  name = f"class{config.data.class_index}_seed{seed}_{value_range}"
  opt = make_opt(config, nc, seed, FLAGS.outf.value, name)
  opt.niter = num_epochs

  # The reference's BaseModel.__init__ seeds random, numpy and torch with manualseed first;
  # the loaders are built after (their shuffling draws from torch's global generator).
  dataloader = {}
  model = ref_model.Ganomaly(opt, dataloader)
  train_ds = torch.utils.data.TensorDataset(x_train, torch.zeros(len(x_train), dtype=torch.long))
  test_ds = torch.utils.data.TensorDataset(x_test, torch.from_numpy(y_test))
  dataloader["train"] = common.CappedLoader(torch.utils.data.DataLoader(
      train_ds, batch_size=batch, shuffle=True, num_workers=0, drop_last=True), [num_steps])
  dataloader["test"] = torch.utils.data.DataLoader(  # Its MNIST test loader: shuffled, no drop.
      test_ds, batch_size=batch, shuffle=True, num_workers=0, drop_last=False)

  steps, reinits = common.record_steps(model, lambda m: {
      "d_real": float(m.pred_real.mean()), "d_fake": float(m.pred_fake.mean())})
  evaluation = common.train_and_evaluate(
      model, [model.netg], lambda: honest_scores(model.netg, x_test, int(config.eval.batch_size)),
      y_test, num_epochs, steps, opt.metric, f"class {config.data.class_index} seed {seed}")
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
  ref_model = import_reference(FLAGS.reference_dir.value)
  common.main(FLAGS, "samet-akcay/ganomaly",
              lambda config, seed, value_range: run_one(ref_model, config, seed, value_range))


if __name__ == "__main__":
  flags.mark_flags_as_required(["reference_dir", "config", "json_out"])
  app.run(main)
