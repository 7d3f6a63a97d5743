"""What the reference drivers share: flags, imports, data conversion, the epoch loop, the JSON.

A driver (`ganomaly_reference.py`, `skip_ganomaly_reference.py`) builds the
reference's own model on `ganad_jax.data.load(config.data, seed)` and hands
`train_and_evaluate` its `train_one_epoch` / `test` methods, the nets whose
BatchNorm statistics `test()` moves, and an honest (eval-mode) scorer; `main`
loops over classes and seeds and writes the JSON that `compare.py` reads.
"""

import copy
import glob
import json
import os
import struct
import sys
import time
import types

from absl import flags
from absl import logging
from ml_collections import config_flags
import numpy as np
from sklearn import metrics as sk_metrics
from tensorboardX.proto import event_pb2

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def define_flags(reference: str, outf_default: str) -> types.SimpleNamespace:
  """Defines the drivers' flags (reference checkout, classes, seeds, ...); returns their holders."""
  return types.SimpleNamespace(
      reference_dir=flags.DEFINE_string("reference_dir", None, f"Checkout of {reference}."),
      classes=flags.DEFINE_list("classes", [], "Anomalous classes (data.class_index); empty = the "
                                "config's."),
      seeds=flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds (our split seed and the "
                              "reference's manualseed)."),
      value_range=flags.DEFINE_enum("value_range", "reference", ["reference", "ours"],
                                    "Input value range (see the driver's docstring)."),
      json_out=flags.DEFINE_string("json_out", None, "Where to write the JSON results."),
      outf=flags.DEFINE_string("outf", outf_default, "The reference's --outf (its Visualizer "
                               "writes a loss log and image folders there)."),
      threads=flags.DEFINE_integer("threads", 1, "torch.set_num_threads (1: on a shared 2-core "
                                   "CPU, 2 threads ran 4x slower per step)."),
      config=config_flags.DEFINE_config_file(
          "config", None, "Our config (configs/*.py); override fields with "
          "--config.<section>.<field>=value."))


def import_reference(reference_dir: str, module: str, tqdm_modules: tuple[str, ...]):
  """Imports the reference's `module` (e.g. "lib.model") from `reference_dir`.

  The `tqdm` of each module named in `tqdm_modules` becomes a pass-through (no
  progress bars). FileNotFoundError names the missing file.
  """
  path = os.path.join(reference_dir, *module.split(".")) + ".py"
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found (--reference_dir={reference_dir}).")
  sys.path.insert(0, reference_dir)
  import importlib  # pylint: disable=import-outside-toplevel
  ref = importlib.import_module(module)
  for name in tqdm_modules:
    importlib.import_module(name).tqdm = lambda iterable, **kwargs: iterable
  return ref


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


def step_budget(config, num_train: int) -> tuple[int, int, int]:
  """(steps per epoch of the drop-last loader, total steps, epochs) of our config's budget."""
  steps_per_epoch = num_train // int(config.train.batch_size)
  num_steps = int(config.train.num_steps) or int(round(float(config.train.num_epochs)
                                                       * steps_per_epoch))
  return steps_per_epoch, num_steps, -(-num_steps // steps_per_epoch)


def record_steps(model, extra) -> tuple[list[dict], list[int]]:
  """Wraps `model.optimize_params` / `model.reinit_d` (instance attributes; code untouched).

  Returns (steps, reinits): after every step, `steps` gets the reference's
  `get_errors()` plus `extra(model)` (a dict of floats); `reinits[0]` counts D
  re-initialisations.
  """
  steps, reinits = [], [0]
  optimize, reinit = model.optimize_params, model.reinit_d

  def recorded_optimize():
    optimize()
    errors = dict(model.get_errors())
    errors.update(extra(model))
    steps.append({k: float(v) for k, v in errors.items()})

  def counted_reinit():
    reinits[0] += 1
    reinit()

  model.optimize_params = recorded_optimize
  model.reinit_d = counted_reinit
  return steps, reinits


def running_stats(net) -> dict:
  """Copies of a torch net's BatchNorm running statistics (state_dict entries)."""
  return {k: v.clone() for k, v in net.state_dict().items()
          if "running_" in k or "num_batches_tracked" in k}


def train_and_evaluate(model, nets, honest_fn, y_test: np.ndarray, num_epochs: int,
                       steps: list[dict], metric: str, label: str, extra_fn=None) -> dict:
  """The reference's `train()` loop (train one epoch, then `test()`) with both evaluations.

  Args:
    model: the reference model, its `optimize_params` wrapped by `record_steps`.
    nets: the torch nets whose BatchNorm running statistics `test()` moves
      with its train-mode passes over test batches; restored after each
      `test()` (the reference never reads them, our honest score does).
    honest_fn: () -> scores of the test split in eval mode (copies of the nets).
    y_test: the test labels (1 = anomalous), in the order `honest_fn` scores.
    num_epochs: epochs to run (the training loader stops at the step budget).
    steps: the list `record_steps` fills.
    metric: the key of `test()`'s result holding its AUROC.
    label: for the log.
    extra_fn: optional () -> {name: AUROC}, more evaluations after `test()`
      (before the statistics are restored); each epoch records them and the
      record gets "<name>_last".

  Returns:
    The record's evaluation part: honest / train-mode-BN-last / paper AUROCs,
    per-epoch values and loss means, training seconds.
  """
  epochs, best_auc, train_time = [], 0.0, 0.0
  model.total_steps = 0
  for epoch in range(num_epochs):
    model.epoch = epoch
    first = len(steps)
    t = time.time()
    model.train_one_epoch()
    train_time += time.time() - t
    honest = honest_fn()
    saved = [running_stats(net) for net in nets]
    res = model.test()  # Train-mode BN, the reference's test loader, min-max, roc.
    extra = extra_fn() if extra_fn else {}
    for net, stats in zip(nets, saved):
      net.load_state_dict(stats, strict=False)
    best_auc = max(best_auc, float(res[metric]))
    epoch_steps = steps[first:]
    epochs.append({
        "epoch": epoch + 1, "steps": len(steps),
        "honest_auroc": float(sk_metrics.roc_auc_score(y_test, honest)),
        "honest_auprc": float(sk_metrics.average_precision_score(y_test, honest)),
        "train_bn_auroc": float(res[metric]), **extra,
        "mean_losses": {k: float(np.mean([s[k] for s in epoch_steps])) for k in epoch_steps[0]},
    })
    logging.info("%s epoch %d (%d steps): honest %.4f, reference test() %.4f, best %.4f", label,
                 epoch + 1, len(steps), epochs[-1]["honest_auroc"], epochs[-1]["train_bn_auroc"],
                 best_auc)
    for net in nets:
      net.train()  # test() leaves them in train mode anyway; explicit.
  return {
      "honest_auroc": epochs[-1]["honest_auroc"],
      "honest_auprc": epochs[-1]["honest_auprc"],
      "train_bn_last_auroc": epochs[-1]["train_bn_auroc"],
      "paper_auroc": best_auc,
      "paper_best_epoch": 1 + int(np.argmax([e["train_bn_auroc"] for e in epochs])),
      **{f"{k}_last": epochs[-1][k] for k in extra},
      "epochs": epochs, "train_wall_s": train_time,
  }


def main(fl: types.SimpleNamespace, reference: str, run_one) -> None:
  """Runs `run_one(config, seed, value_range)` per class and seed; writes the JSON; prints means."""
  import torch  # pylint: disable=import-outside-toplevel
  torch.set_num_threads(fl.threads.value)
  config = fl.config.value
  classes = [int(c) for c in fl.classes.value] or [int(config.data.class_index)]
  seeds = [int(s) for s in fl.seeds.value]
  runs = []
  t0 = time.time()
  for cls in classes:
    for seed in seeds:
      cfg = copy.deepcopy(config)
      cfg.data.class_index = cls
      runs.append(run_one(cfg, seed, fl.value_range.value))
      logging.info("class %d seed %d: honest %.4f, paper %.4f (%.0f s)", cls, seed,
                   runs[-1]["honest_auroc"], runs[-1]["paper_auroc"], runs[-1]["wall_s"])
  summary = {}
  for cls in classes:
    rs = [r for r in runs if r["class"] == cls]
    summary[str(cls)] = {k: {"mean": float(np.mean([r[k] for r in rs])),
                             "std": float(np.std([r[k] for r in rs]))}
                         for k in ("honest_auroc", "train_bn_last_auroc", "paper_auroc")}
  result = {"reference": reference, "reference_dir": fl.reference_dir.value,
            "command": "python " + " ".join(sys.argv), "value_range": fl.value_range.value,
            "torch": torch.__version__, "config": json.loads(config.to_json_best_effort()),
            "summary": summary, "total_wall_s": time.time() - t0, "runs": runs}
  os.makedirs(os.path.dirname(os.path.abspath(fl.json_out.value)), exist_ok=True)
  with open(fl.json_out.value, "w") as f:
    json.dump(result, f, indent=1)
  for cls, s in summary.items():
    print(f"class {cls}: " + ", ".join(f"{k} {v['mean']:.3f} ± {v['std']:.3f}"
                                       for k, v in s.items()))


def read_scalars(folder: str) -> dict[str, dict[int, float]]:
  """{tag: {step: value}} from every TensorBoard event file in `folder` (TFRecord framing:
  length, its CRC, the event, its CRC); our runs' training losses."""
  out = {}
  for path in sorted(glob.glob(os.path.join(folder, "events.out.tfevents.*"))):
    with open(path, "rb") as f:
      data = f.read()
    pos = 0
    while pos + 12 <= len(data):
      (length,) = struct.unpack("<Q", data[pos:pos + 8])
      event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + length])
      pos += 12 + length + 4
      for value in event.summary.value:
        out.setdefault(value.tag, {})[int(event.step)] = float(value.simple_value)
  return out
