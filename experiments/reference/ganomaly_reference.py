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
import json
import os
import sys
import time
import types

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags
import numpy as np
from sklearn import metrics as sk_metrics

from ganad_jax import data as gdata

_REFERENCE_DIR = flags.DEFINE_string("reference_dir", None, "Checkout of samet-akcay/ganomaly "
                                     "(the folder holding lib/model.py).")
_CLASSES = flags.DEFINE_list("classes", [], "Anomalous classes (data.class_index); empty = the "
                             "config's.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds (our split seed and the reference's "
                           "manualseed).")
_VALUE_RANGE = flags.DEFINE_enum("value_range", "reference", ["reference", "ours"],
                                 "Input value range (see the module docstring).")
_JSON_OUT = flags.DEFINE_string("json_out", None, "Where to write the JSON results.")
_OUTF = flags.DEFINE_string("outf", "/tmp/ganomaly_reference_out", "The reference's --outf "
                            "(its Visualizer writes a loss log and image folders there).")
_THREADS = flags.DEFINE_integer("threads", 1, "torch.set_num_threads (1: on a shared 2-core CPU, 2 threads ran 4x slower per step).")
config_flags.DEFINE_config_file("config", None, "Our config (configs/ganomaly_*.py); override "
                                "fields with --config.<section>.<field>=value.")

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def import_reference(reference_dir: str):
  """Imports the reference's `lib.model` and replaces its `tqdm` by a pass-through."""
  if not os.path.exists(os.path.join(reference_dir, "lib", "model.py")):
    raise FileNotFoundError(f"{reference_dir}/lib/model.py not found (--reference_dir).")
  sys.path.insert(0, reference_dir)
  from lib import model as ref_model  # pylint: disable=import-outside-toplevel
  ref_model.tqdm = lambda iterable, **kwargs: iterable  # No progress bars.
  return ref_model


def to_torch(x: np.ndarray, value_range: str):
  """NHWC float in [-1, 1] -> NCHW torch float32 in the chosen range."""
  import torch  # pylint: disable=import-outside-toplevel
  x = np.transpose(np.asarray(x, np.float32), (0, 3, 1, 2))
  if value_range == "reference":
    x = ((x + 1.0) / 2.0 - MNIST_MEAN) / MNIST_STD
  return torch.from_numpy(np.ascontiguousarray(x))


class CappedLoader:
  """A DataLoader that stops after `budget[0]` batches in total (shared across epochs)."""

  def __init__(self, loader, budget: list[int]):
    self.loader, self.budget, self.dataset = loader, budget, loader.dataset

  def __len__(self):
    return min(len(self.loader), self.budget[0])

  def __iter__(self):
    for batch in self.loader:
      if self.budget[0] <= 0:
        return
      self.budget[0] -= 1
      yield batch


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
  steps_per_epoch = len(x_train) // batch
  num_steps = int(config.train.num_steps) or int(round(float(config.train.num_epochs)
                                                       * steps_per_epoch))
  num_epochs = -(-num_steps // steps_per_epoch)
  name = f"class{config.data.class_index}_seed{seed}_{value_range}"
  opt = make_opt(config, nc, seed, _OUTF.value, name)
  opt.niter = num_epochs

  # The reference's BaseModel.__init__ seeds random, numpy and torch with manualseed first;
  # the loaders are built after (their shuffling draws from torch's global generator).
  dataloader = {}
  model = ref_model.Ganomaly(opt, dataloader)
  train_ds = torch.utils.data.TensorDataset(x_train, torch.zeros(len(x_train), dtype=torch.long))
  test_ds = torch.utils.data.TensorDataset(x_test, torch.from_numpy(y_test))
  budget = [num_steps]
  dataloader["train"] = CappedLoader(torch.utils.data.DataLoader(
      train_ds, batch_size=batch, shuffle=True, num_workers=0, drop_last=True), budget)
  dataloader["test"] = torch.utils.data.DataLoader(  # Its MNIST test loader: shuffled, no drop.
      test_ds, batch_size=batch, shuffle=True, num_workers=0, drop_last=False)

  steps, reinits = [], [0]
  optimize = model.optimize_params

  def recorded_optimize():
    optimize()
    errors = model.get_errors()
    errors["d_real"] = float(model.pred_real.mean())
    errors["d_fake"] = float(model.pred_fake.mean())
    steps.append({k: float(v) for k, v in errors.items()})

  reinit = model.reinit_d

  def counted_reinit():
    reinits[0] += 1
    reinit()

  model.optimize_params = recorded_optimize
  model.reinit_d = counted_reinit

  epochs, best_auc, train_time = [], 0.0, 0.0
  model.total_steps = 0
  for epoch in range(num_epochs):  # Ganomaly.train(), with our step budget and both evaluations.
    model.epoch = epoch
    first = len(steps)
    t = time.time()
    model.train_one_epoch()
    train_time += time.time() - t
    honest = honest_scores(model.netg, x_test, int(config.eval.batch_size))
    # test() runs netG in train mode, which moves its BatchNorm running statistics with test
    # batches; the reference never reads them (it never evaluates in eval mode), so restoring
    # them leaves its training unchanged and keeps later honest evaluations free of test data
    # (without this, a last epoch of a few steps is scored with statistics mostly of the test set).
    running = {k: v.clone() for k, v in model.netg.state_dict().items()
               if "running_" in k or "num_batches_tracked" in k}
    res = model.test()  # Train-mode BN, shuffled test loader, min-max, roc.
    model.netg.load_state_dict(running, strict=False)
    best_auc = max(best_auc, float(res[opt.metric]))
    epoch_steps = steps[first:]
    epochs.append({
        "epoch": epoch + 1, "steps": len(steps),
        "honest_auroc": float(sk_metrics.roc_auc_score(y_test, honest)),
        "honest_auprc": float(sk_metrics.average_precision_score(y_test, honest)),
        "train_bn_auroc": float(res[opt.metric]),
        "mean_losses": {k: float(np.mean([s[k] for s in epoch_steps])) for k in epoch_steps[0]},
    })
    logging.info("class %s seed %d epoch %d (%d steps): honest %.4f, reference test() %.4f, "
                 "best %.4f", config.data.class_index, seed, epoch + 1, len(steps),
                 epochs[-1]["honest_auroc"], epochs[-1]["train_bn_auroc"], best_auc)
    model.netg.train()  # test() leaves it in train mode anyway; explicit.
  return {
      "class": int(config.data.class_index), "seed": seed, "value_range": value_range,
      "num_steps": len(steps), "num_epochs": num_epochs, "steps_per_epoch": steps_per_epoch,
      "sizes": {"train": len(x_train), "test": len(x_test), "test_anomalous": int(y_test.sum())},
      "input_min": float(x_train.min()), "input_max": float(x_train.max()),
      "honest_auroc": epochs[-1]["honest_auroc"],
      "honest_auprc": epochs[-1]["honest_auprc"],
      "train_bn_last_auroc": epochs[-1]["train_bn_auroc"],
      "paper_auroc": best_auc,
      "paper_best_epoch": 1 + int(np.argmax([e["train_bn_auroc"] for e in epochs])),
      "d_reinits": reinits[0], "epochs": epochs, "step_losses": steps,
      "final_losses": steps[-1], "train_wall_s": train_time, "wall_s": time.time() - t0,
  }


def main(argv):
  del argv
  import torch  # pylint: disable=import-outside-toplevel
  torch.set_num_threads(_THREADS.value)
  ref_model = import_reference(_REFERENCE_DIR.value)
  config = flags.FLAGS.config
  classes = [int(c) for c in _CLASSES.value] or [int(config.data.class_index)]
  seeds = [int(s) for s in _SEEDS.value]
  runs = []
  t0 = time.time()
  for cls in classes:
    for seed in seeds:
      cfg = copy.deepcopy(config)
      cfg.data.class_index = cls
      runs.append(run_one(ref_model, cfg, seed, _VALUE_RANGE.value))
      logging.info("class %d seed %d: honest %.4f, paper %.4f (%.0f s)", cls, seed,
                   runs[-1]["honest_auroc"], runs[-1]["paper_auroc"], runs[-1]["wall_s"])
  summary = {}
  for cls in classes:
    rs = [r for r in runs if r["class"] == cls]
    summary[str(cls)] = {k: {"mean": float(np.mean([r[k] for r in rs])),
                             "std": float(np.std([r[k] for r in rs]))}
                         for k in ("honest_auroc", "train_bn_last_auroc", "paper_auroc")}
  result = {"reference": "samet-akcay/ganomaly", "reference_dir": _REFERENCE_DIR.value,
            "command": "python " + " ".join(sys.argv), "value_range": _VALUE_RANGE.value,
            "torch": torch.__version__, "config": json.loads(config.to_json_best_effort()),
            "summary": summary, "total_wall_s": time.time() - t0, "runs": runs}
  os.makedirs(os.path.dirname(os.path.abspath(_JSON_OUT.value)), exist_ok=True)
  with open(_JSON_OUT.value, "w") as f:
    json.dump(result, f, indent=1)
  for cls, s in summary.items():
    print(f"class {cls}: " + ", ".join(f"{k} {v['mean']:.3f} ± {v['std']:.3f}"
                                       for k, v in s.items()))


if __name__ == "__main__":
  flags.mark_flags_as_required(["reference_dir", "config", "json_out"])
  app.run(main)
