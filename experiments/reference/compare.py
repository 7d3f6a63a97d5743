r"""Tables ours (a benchmark.py workdir) beside the reference driver's JSON: AUROC and losses.

  PYTHONPATH=$PWD python experiments/reference/compare.py --ours=/work/runs/ref_ours \
      --reference=/work/runs/ref_theirs/ganomaly_reference.json,/work/runs/ref_theirs/ganomaly_ours.json

Prints Markdown: per class, mean ± std over seeds of our AUROC and of the
reference's honest / train-BN-last / paper-protocol AUROCs (the mean row:
the mean over classes within each seed that has all of them, then mean ± std
over those seeds); then the training
losses at our logged steps (our TensorBoard scalars `train/*`, instantaneous
values of that step; the reference's per-step values at the same steps and
their mean over the preceding `log_every` steps), mean over all runs.
"""

import glob
import json
import os
import sys

from absl import app
from absl import flags
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # pylint: disable=wrong-import-position

# Per method: the reference's loss names -> ours.
NAMES = {
    "ganomaly": {"err_d": "d_loss", "err_g": "g_loss", "err_g_adv": "g_adv",
                 "err_g_con": "g_con", "err_g_enc": "g_enc", "d_real": "d_real",
                 "d_fake": "d_fake"},
    # Its err_d adds err_g_lat; err_d_bce (the driver's) is the BCE part, our d_loss.
    "skip_ganomaly": {"err_d_bce": "d_loss", "err_g": "g_loss", "err_g_adv": "g_adv",
                      "err_g_con": "g_con", "err_g_lat": "g_lat", "d_real": "d_real",
                      "d_fake": "d_fake"},
}
# Reference losses stored weighted, ours unweighted: name -> the config weight to divide by.
WEIGHTED = {"skip_ganomaly": {"err_g_con": ("skip_ganomaly", "w_con")}}
# Reference AUROCs per run: key -> column title; the optional ones only where present.
COLUMNS = {"honest_auroc": "honest", "train_bn_last_auroc": "train-mode BN, last epoch",
           "train_bn_shuffled_auroc_last": "train-mode BN, last epoch, shuffled test",
           "paper_auroc": "paper protocol (best test epoch)"}
OPTIONAL = ("train_bn_shuffled_auroc_last",)

_OURS = flags.DEFINE_list("ours", None, "benchmark.py workdirs of ours (WORKDIR/ganomaly/C/seedS), "
                         "pooled.")
_REFERENCE = flags.DEFINE_list("reference", [], "JSON files written by ganomaly_reference.py or "
                                "skip_ganomaly_reference.py (files of the same --value_range are "
                                "pooled).")
_SEEDS = flags.DEFINE_list("seeds", [], "Only these seeds (both sides); empty = all.")
_METHOD = flags.DEFINE_enum("method", "ganomaly", list(NAMES), "Method folder under --ours "
                            "(and its loss names).")


def ours_runs(workdir: str, method: str) -> list[dict]:
  runs = []
  for path in sorted(glob.glob(os.path.join(workdir, method, "*", "seed*", "results.json"))):
    with open(path) as f:
      r = json.load(f)
    folder = os.path.dirname(path)
    runs.append({"class": int(folder.split(os.sep)[-2]), "seed": int(r["seed"]),
                 "auroc": float(r["metrics"]["score"]["auroc"]), "wall_s": r["wall_time_s"]["total"],
                 "train_s": r["wall_time_s"]["train"], "steps": int(r["steps"]),
                 "scalars": common.read_scalars(os.path.join(folder, "tensorboard"))})
  return runs


def ms(values) -> str:
  return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def main(argv):
  del argv
  ours = [r for w in _OURS.value for r in ours_runs(w, _METHOD.value)]
  refs = []  # One column group per value range; files of the same range are pooled.
  for path in _REFERENCE.value:
    with open(path) as f:
      ref = json.load(f)
    same = [r for r in refs if r["value_range"] == ref["value_range"]]
    if same:
      same[0]["runs"] = same[0]["runs"] + ref["runs"]
    else:
      refs.append(ref)
  if _SEEDS.value:
    keep = {int(x) for x in _SEEDS.value}
    ours = [r for r in ours if r["seed"] in keep]
    for ref in refs:
      ref["runs"] = [r for r in ref["runs"] if r["seed"] in keep]
  classes = sorted({r["class"] for r in ours})
  if refs:  # Only the classes every side has (runs still going, or left out).
    shared = set(classes).intersection(*({r["class"] for r in ref["runs"]} for ref in refs))
    if shared != set(classes) or any({r["class"] for r in ref["runs"]} != shared for ref in refs):
      print(f"(Classes on both sides only: {sorted(shared)}.)\n")
    classes = sorted(shared)
    ours = [r for r in ours if r["class"] in shared]
    for ref in refs:
      ref["runs"] = [r for r in ref["runs"] if r["class"] in shared]
  names = NAMES[_METHOD.value]
  for ref in refs:
    ref["columns"] = [k for k in COLUMNS if k not in OPTIONAL or all(k in r for r in ref["runs"])]
    ref["divisors"] = {k: float(ref["config"][sec][field])
                       for k, (sec, field) in WEIGHTED.get(_METHOD.value, {}).items()}
  header = "| anomalous digit | ours |"
  rule = "|---|---|"
  for ref in refs:
    vr = ref["value_range"]
    header += "".join(f" reference, {vr} range: {COLUMNS[k]} |" for k in ref["columns"])
    rule += "---|" * len(ref["columns"])
  print(header)
  print(rule)
  rows = classes + ["mean"]
  for c in rows:
    pick = (lambda rs, c=c: [r for r in rs if r["class"] == c]) if c != "mean" else None

    def per_seed_mean(rs, key):  # Over the seeds that have every class of the table.
      seeds = sorted(s for s in {r["seed"] for r in rs}
                     if {r["class"] for r in rs if r["seed"] == s} >= set(classes))
      return [np.mean([r[key] for r in rs if r["seed"] == s]) for s in seeds]

    line = f"| {c} | " + (ms([r["auroc"] for r in pick(ours)]) if pick else
                          ms(per_seed_mean(ours, "auroc"))) + " |"
    for ref in refs:
      for key in ref["columns"]:
        vals = [r[key] for r in pick(ref["runs"])] if pick else per_seed_mean(ref["runs"], key)
        line += f" {ms(vals)} |"
    print(line)
  line = f"| wall time, all runs (s) | {sum(r['wall_s'] for r in ours):.0f} |"
  for ref in refs:
    line += (f" {sum(r['wall_s'] for r in ref['runs']):.0f} (one run for all its columns) |"
             + " |" * (len(ref["columns"]) - 1))
  print(line)
  line = f"| training s / step | {np.mean([r['train_s'] / r['steps'] for r in ours]):.3f} |"
  for ref in refs:
    line += (f" {np.mean([r['train_wall_s'] / r['num_steps'] for r in ref['runs']]):.3f} |"
             + " |" * (len(ref["columns"]) - 1))
  print(line)
  print()
  steps = sorted(ours[0]["scalars"]["train/d_loss"])
  log_every = steps[1] - steps[0] if len(steps) > 1 else steps[0]
  print("Training losses, mean over all runs: ours (TensorBoard, that step) / reference "
        f"(that step; mean of the last {log_every} steps)" + (" for each value range" if refs else ""))
  print()
  print("| step | " + " | ".join(names.values()) + " |")
  print("|---|" + "---|" * len(names))
  for step in steps:
    cells = []
    for ref_name, name in names.items():
      o = np.mean([r["scalars"][f"train/{name}"][step] for r in ours])
      cell = f"{o:.3g}"
      for ref in refs:
        div = ref["divisors"].get(ref_name, 1.0)
        at = np.mean([r["step_losses"][step - 1][ref_name] for r in ref["runs"]
                      if len(r["step_losses"]) >= step]) / div
        win = np.mean([np.mean([s[ref_name] for s in r["step_losses"][step - log_every:step]])
                       for r in ref["runs"] if len(r["step_losses"]) >= step]) / div
        cell += f" / {at:.3g} ({win:.3g})"
      cells.append(cell)
    print(f"| {step} | " + " | ".join(cells) + " |")
  for ref in refs:
    print(f"\nReference, {ref['value_range']} range: D re-initialisations per run "
          f"{[r['d_reinits'] for r in ref['runs']]}; paper-protocol best epochs "
          f"{[r['paper_best_epoch'] for r in ref['runs']]}.")
  print(f"Ours: D re-initialisations at logged steps "
        f"{[sum(v for v in r['scalars']['train/d_reinit'].values()) for r in ours]}.")


if __name__ == "__main__":
  flags.mark_flags_as_required(["ours"])
  app.run(main)
