r"""Runs PyOD's AnoGAN (`pyod.models.anogan`, PyTorch) on ganad_jax's splits, and both searches.

PyOD is NOT a dependency of ganad_jax: install it into a folder of its own and
point --pyod_path at it (torch comes from the interpreter running this file):

  python -m pip install --no-deps --target /work/wt/anoganref_venv \
      pyod==3.6.7 numba llvmlite pandas tzdata

  PYTHONPATH=$PWD nice -n 19 python experiments/reference/anogan_reference.py \
      --pyod_path=/work/wt/anoganref_venv --config=configs/anogan_breast_cancer.py \
      --seeds=0,1,2 --json_out=/work/runs/anoganref_theirs/pyod.json \
      --ours=/work/runs/anoganref_ours

(--ours: a `benchmark.py --methods=anogan` workdir of the same config and
seeds; with it the Markdown tables put our runs beside the reference's.
--check_seeds / --check_searches: the seeds that also get the per-row runs
below, and which of them; each costs about one carry_over.)

For each seed the data are `ganad_jax.data.load(config.data, seed)`: the
train / test arrays our benchmark uses (features already MinMax-scaled to
[-1, 1], so PyOD's `preprocessing` is off; our validation rows are unused).
What runs is PyOD's own `AnoGAN.fit` (its Generator / Discriminator, its
training loop and losses, its per-sample query loop) and `decision_function`,
with the settings our config shares with it: latent_dim_G `model.nz`,
G_layers / D_layers `anogan.g_widths` / `anogan.d_widths`, epochs
`train.num_epochs` (PyOD's loader keeps the last short batch: 9 steps per
epoch on 257 rows where ours has 8), batch_size, learning_rate `optim.lr`
(PyOD's Adam keeps torch's betas (0.9, 0.999); ours uses b1 0.5),
learning_rate_query `anogan.search.lr`, epochs_query `anogan.search.steps`.
Our nets have no dropout and LeakyReLU hidden layers, so dropout_rate=0 and
activation_hidden='leaky_relu' (PyOD's slope 0.01; ours 0.2). PyOD exposes no
lambda and no feature layer (`index_D_layer_for_recon_error` is stored but
never read): its search loss is
    mean|x - G(z)| + |D(x) - D(G(z))|,   D(.) the sigmoid output,
which is ((F + 1) / F) times ours, (1 - lam) sum|x - G(z)| + lam sum|f(x) -
f(G(z))|, at lam = F / (F + 1) with f = D's output (F features). Adam does not
see a constant factor (but for its 1e-8 epsilon), so the two searches must
then take the same steps.

Scores of the reference, all on the test rows:
  decision_function  PyOD's own test score: NO search; every row is compared
                     with the G(z) fitted to the LAST training row.
  carry_over         PyOD's query loop (its `fit` with epochs=0, on the nets as
                     its training left them) over the test rows in test order:
                     as in its fit, z, the Adam state and the nets' changes
                     are carried from each row to the next.
  carry_over_shuffled  the same over the rows in a shuffled order, mapped back:
                     how much a row's score depends on the order of the set.
  fresh              the query loop run on one row at a time (a new fit call
                     per row): each row from a fresh z0 (PyOD's own draw, a
                     new nn.Linear bias) and a fresh Adam.
  fresh_frozen       as fresh, with G's and D's parameters requires_grad
                     False, so that the loop moves z alone (PyOD's Adam is
                     built over `query_model.parameters()`, which include G's
                     and D's: as shipped its loop trains the nets too).
Patches, applied here at run time and undone after each fit (no PyOD file is
edited): the module's Generator / Discriminator names return copies of the
trained nets for the query runs; QueryModel's __init__ and forward are
wrapped to keep a copy of G and D as training left them (before fit's query
loop over the training rows changes them) and to record z, G(z), D(G(z)) and
(a forward hook on D) the loop's D(query) at every step. The per-step losses
are recomputed from these with the loop's expression and checked against
the loop's own final loss.

Ours on the SAME weights: the reference's trained G and D are copied into Flax
MLPs of the reference's architecture (built here only: Dense, LeakyReLU of the
reference's slope, sigmoid D output), checked to give the same outputs, then
  ours_ref_loss   `latent_search.search_chunk` with lam = F / (F + 1), f = D's
                  output, select 'final', the same steps and lr, started from
                  each row's z0 of the `fresh_frozen` run: the search-level
                  check (scores x (F + 1) / F against `fresh_frozen`, per row
                  and per step);
  ours_ref_loss_ulp  the same from z0 moved by one float32 ulp (how far
                  round-off alone carries the search);
  ours_config     `latent_search.search` as our config has it (lam 0.1 on D's
                  penultimate layer, z from zeros, best iterate) on the
                  reference's nets.
AUROC: sklearn's roc_auc_score on the raw scores.
"""

import contextlib
import copy
import json
import os
import sys
import time

from absl import app
from absl import flags
from absl import logging
import flax.linen as nn
import jax
import jax.numpy as jnp
from ml_collections import config_flags
import numpy as np
from sklearn import metrics as sk_metrics

from ganad_jax import data as gdata
from ganad_jax import latent_search

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # pylint: disable=wrong-import-position

_PYOD_PATH = flags.DEFINE_string("pyod_path", None, "Folder holding the pyod package (pip "
                                 "--target), put first on sys.path.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds: our split seed and torch's.")
_CHECK_SEEDS = flags.DEFINE_list("check_seeds", [], "Seeds of the per-row search-level check "
                                 "(`fresh`, `ours_ref_loss`) and of `carry_over_shuffled`; "
                                 "empty = all --seeds.")
_CHECK_SEARCHES = flags.DEFINE_list(
    "check_searches", ["carry_over_shuffled", "fresh", "fresh_frozen"],
    "Reference searches run on the check seeds besides carry_over (fresh_frozen gives the z0 of "
    "the per-row check).")
_JSON_OUT = flags.DEFINE_string("json_out", None, "Where to write the JSON results.")
_OURS = flags.DEFINE_string("ours", None, "benchmark.py workdir of our AnoGAN (same config, "
                            "seeds): adds our runs to the printed tables.")
_THREADS = flags.DEFINE_integer("threads", 1, "torch.set_num_threads.")
config_flags.DEFINE_config_file("config", None, "Our config (configs/anogan_breast_cancer.py).")

LOSS_FRACTIONS = (1 / 16, 1 / 8, 1 / 4, 1 / 2, 1)  # Of training: ours logs every 50 of 800 steps.


def import_pyod(path: str):
  """Imports `pyod.models.anogan` from `path`."""
  if not os.path.isdir(os.path.join(path, "pyod")):
    raise FileNotFoundError(f"{path}/pyod not found (--pyod_path).")
  sys.path.insert(0, path)
  import pyod  # pylint: disable=import-outside-toplevel
  from pyod.models import anogan  # pylint: disable=import-outside-toplevel
  return pyod, anogan


def check_config(config) -> None:
  """Refuses configs whose search or training PyOD cannot express."""
  search = config.anogan.search
  problems = []
  if config.method != "anogan":
    problems.append(f"method is {config.method!r}, not 'anogan'")
  if search.schedule != "constant" or search.optimizer != "adam":
    problems.append(f"anogan.search: schedule {search.schedule!r} / optimizer "
                    f"{search.optimizer!r} (PyOD: constant-lr Adam)")
  if float(config.train.num_epochs) != int(config.train.num_epochs) or config.train.num_steps:
    problems.append(f"train.num_epochs {config.train.num_epochs} / num_steps "
                    f"{config.train.num_steps} (PyOD trains whole epochs)")
  if config.anogan.feature_matching:
    problems.append("anogan.feature_matching is on (PyOD: BCE generator loss)")
  if problems:
    raise ValueError("The config does not fit PyOD's AnoGAN: " + "; ".join(problems) + ".")


def make_detector(anogan, config, epochs: int):
  """PyOD's AnoGAN with the settings our config shares with it (module docstring)."""
  return anogan.AnoGAN(
      activation_hidden="leaky_relu", dropout_rate=0.0, latent_dim_G=int(config.model.nz),
      G_layers=list(config.anogan.g_widths), D_layers=list(config.anogan.d_widths),
      epochs=epochs, batch_size=int(config.train.batch_size),
      learning_rate=float(config.optim.lr), learning_rate_query=float(config.anogan.search.lr),
      epochs_query=int(config.anogan.search.steps), preprocessing=False,
      output_activation=None, device="cpu")


@contextlib.contextmanager
def patch_pyod(anogan, nets=None, record=None, snapshot=None):
  """Patches PyOD's module names for one `fit` (module docstring).

  nets: (G, D) that the module's Generator / Discriminator then return.
  record: list receiving, per query step, (z, G(z), D(G(z)), D(query)).
  snapshot: list receiving deep copies of (G, D) as the QueryModel is built,
    i.e. the GAN as trained, before the query loop changes it.
  """
  import torch  # pylint: disable=import-outside-toplevel
  saved = anogan.Generator, anogan.Discriminator
  query_model = anogan.QueryModel  # Patched in place: its __init__ calls super(QueryModel, ...).
  saved_init, saved_forward = query_model.__init__, query_model.forward

  def init(self, generator, discriminator, latent_dim_g):
    saved_init(self, generator, discriminator, latent_dim_g)
    if snapshot is not None:
      snapshot.extend([copy.deepcopy(generator), copy.deepcopy(discriminator)])
    if record is not None:
      self.query_outputs = []
      # The loop's D(query) is the one D call made without gradients.
      discriminator.register_forward_hook(
          lambda m, i, out: None if torch.is_grad_enabled() else self.query_outputs.append(
              out.detach().clone()))

  def forward(self, query_sample):
    z, sample_gen, disc = saved_forward(self, query_sample)
    if record is not None:
      record.append([z.detach().clone(), sample_gen.detach().clone(), disc.detach().clone()])
    return z, sample_gen, disc

  if nets is not None:
    anogan.Generator = lambda **kwargs: nets[0]
    anogan.Discriminator = lambda **kwargs: nets[1]
  query_model.__init__, query_model.forward = init, forward
  try:
    yield
  finally:
    anogan.Generator, anogan.Discriminator = saved
    query_model.__init__, query_model.forward = saved_init, saved_forward


def reference_search(anogan, config, nets, x: np.ndarray, per_row: bool, freeze: bool,
                     seed: int) -> dict:
  """Runs PyOD's query loop (`fit` with epochs=0) on rows x (N, F), starting from nets (G, D).

  Every `fit` gets its own deep copy of the nets (the loop's Adam also trains
  G and D). per_row False: one fit over all rows (z, Adam state and the nets'
  changes carried from row to row); True: one fit per row. freeze: G's and D's
  parameters get requires_grad False, so the loop moves z alone. torch is
  seeded with seed * 100003 + i before the fit of row i (0 for the single
  fit), so runs with the same seed draw the same z0.

  Returns scores (N,) (the loop's last loss per row), z0 (N, nz) (z at each
  row's first step), losses (N, steps) (the loop's expression recomputed from
  the recorded forwards, checked against the scores) and the wall time.
  """
  import torch  # pylint: disable=import-outside-toplevel
  steps = int(config.anogan.search.steps)
  groups = [x[i:i + 1] for i in range(len(x))] if per_row else [x]
  record, query_outputs, scores = [], [], []
  t0 = time.time()
  for i, rows in enumerate(groups):
    g, d = copy.deepcopy(nets[0]), copy.deepcopy(nets[1])
    if freeze:
      for p in list(g.parameters()) + list(d.parameters()):
        p.requires_grad_(False)
    torch.manual_seed(seed * 100003 + i)
    with patch_pyod(anogan, nets=(g, d), record=record):
      query = make_detector(anogan, config, epochs=0).fit(rows)
    scores.append(query.decision_scores_)
    query_outputs.extend(query.query_model.query_outputs)
  wall = time.time() - t0
  scores = np.concatenate(scores)
  if len(record) != len(x) * steps or len(query_outputs) != len(record):
    raise RuntimeError(f"Recorded {len(record)} / {len(query_outputs)} query forwards, "
                       f"expected {len(x)} x {steps}.")
  z, gen, disc = (torch.cat([r[k] for r in record]).reshape(len(x), steps, -1)
                  for k in range(3))
  dx = torch.cat(query_outputs).reshape(len(x), steps, -1)
  xt = torch.tensor(x, dtype=torch.float32)
  losses = ((xt[:, None] - gen).abs().mean(-1) + (dx - disc).abs().mean(-1)).numpy()
  gap = float(np.max(np.abs(losses[:, -1] - scores)))
  if gap > 1e-6:
    raise RuntimeError(f"Recomputed last-step losses differ from the loop's by {gap}.")
  return {"scores": scores, "z0": z[:, 0].numpy(), "losses": losses, "wall_s": wall}


class RefMLP(nn.Module):
  """PyOD's G or D (dropout 0) in Flax: Dense + LeakyReLU(slope) per hidden layer, Dense out.

  Returns (output (N, out_features), {"block<i>", "penultimate"} features);
  with `sigmoid` the output is D's probability.
  """
  widths: tuple[int, ...]
  out_features: int
  slope: float
  sigmoid: bool

  @nn.compact
  def __call__(self, x):
    features = {}
    for i, width in enumerate(self.widths):
      x = nn.leaky_relu(nn.Dense(width, name=f"dense{i}")(x), self.slope)
      features[f"block{i}"] = x
    features["penultimate"] = x
    x = nn.Dense(self.out_features, name="dense_out")(x)
    return (nn.sigmoid(x) if self.sigmoid else x), features


def to_flax(net, sigmoid: bool):
  """(RefMLP, params) holding the weights of PyOD's Sequential `net.model`."""
  import torch  # pylint: disable=import-outside-toplevel
  linears = [m for m in net.model if isinstance(m, torch.nn.Linear)]
  slopes = {m.negative_slope for m in net.model if isinstance(m, torch.nn.LeakyReLU)}
  if len(slopes) != 1 or any(isinstance(m, torch.nn.Dropout) and m.p > 0 for m in net.model):
    raise ValueError(f"Expected LeakyReLU hidden layers without dropout; got {net.model}.")
  names = [f"dense{i}" for i in range(len(linears) - 1)] + ["dense_out"]
  params = {name: {"kernel": jnp.asarray(m.weight.detach().numpy().T),
                   "bias": jnp.asarray(m.bias.detach().numpy())}
            for name, m in zip(names, linears)}
  module = RefMLP(tuple(m.out_features for m in linears[:-1]), linears[-1].out_features,
                  float(slopes.pop()), sigmoid)
  return module, {"params": params}


def ours_on_reference_nets(config, nets, x: np.ndarray, z0: np.ndarray | None, seed: int) -> dict:
  """Our searches on the reference's trained nets (module docstring): ours_ref_loss, ours_config."""
  import torch  # pylint: disable=import-outside-toplevel
  g, g_vars = to_flax(nets[0], sigmoid=False)
  d, d_vars = to_flax(nets[1], sigmoid=True)
  xj = jnp.asarray(x, jnp.float32)
  with torch.no_grad():
    zt = torch.randn(len(x), int(config.model.nz))
    parity = max(float(np.max(np.abs(np.asarray(g.apply(g_vars, jnp.asarray(zt.numpy()))[0])
                                      - nets[0](zt).numpy()))),
                 float(np.max(np.abs(np.asarray(d.apply(d_vars, xj)[0])
                                     - nets[1](torch.tensor(x)).numpy()))))

  def generate_fn(z):
    return g.apply(g_vars, z)[0]

  def d_out(v):
    return d.apply(d_vars, v)[0]

  def d_layer(v):
    return d.apply(d_vars, v)[1][config.anogan.search.feature_layer]

  out = {"flax_vs_torch_max_abs": parity}
  n_features = x.shape[1]
  if z0 is not None:
    cfg = copy.deepcopy(config.anogan.search)
    cfg.lam, cfg.select, cfg.patience, cfg.restarts = n_features / (n_features + 1.0), "final", 0, 1
    search = jax.jit(lambda xs, zs: latent_search.search_chunk(
        generate_fn, d_out, xs, zs, jnp.ones((xs.shape[0],), bool), cfg))
    scale = (n_features + 1.0) / n_features  # PyOD's loss = scale x ours at this lam.
    # The same search from z0 moved by one float32 ulp: how far round-off alone carries it.
    for name, start in (("ours_ref_loss", z0), ("ours_ref_loss_ulp", np.nextafter(z0, np.inf))):
      t0 = time.time()
      result = jax.block_until_ready(search(xj, jnp.asarray(start)[:, None, :]))
      out[name] = {"scores": np.asarray(result.score) * scale,
                   "losses": np.asarray(result.loss_trajectory) * scale, "wall_s": time.time() - t0}
  t0 = time.time()
  result = jax.jit(lambda xs: latent_search.search(
      generate_fn, d_layer, xs, jax.random.key(seed), config.anogan.search,
      int(config.model.nz)))(xj)
  out["ours_config"] = {"scores": np.asarray(jax.block_until_ready(result.score)),
                        "wall_s": time.time() - t0}
  return out


def compare_searches(ref: dict, ours: dict) -> dict:
  """Per-row agreement of two searches' final scores and per-step losses."""
  rel = np.abs(ours["scores"] - ref["scores"]) / np.abs(ref["scores"])
  step_rel = np.abs(ours["losses"] - ref["losses"]) / np.abs(ref["losses"])
  return {"pearson": float(np.corrcoef(ours["scores"], ref["scores"])[0, 1]),
          "max_rel_diff": float(rel.max()), "median_rel_diff": float(np.median(rel)),
          "max_rel_diff_per_step": step_rel.max(axis=0).tolist(),
          "mean_loss_per_step": {"reference": ref["losses"].mean(axis=0).tolist(),
                                 "ours": ours["losses"].mean(axis=0).tolist()}}


def run_one(pyod_anogan, config, seed: int, check: tuple[str, ...]) -> dict:
  """Trains PyOD's AnoGAN on our split of `seed` and scores the test rows every way."""
  import torch  # pylint: disable=import-outside-toplevel
  splits = gdata.load(config.data, seed)
  x_train = np.asarray(splits.train.x, np.float32)
  x_test = np.asarray(splits.test.x, np.float32)
  y_test = np.asarray(splits.test.y, np.int64)
  torch.manual_seed(seed)
  np.random.seed(seed)
  nets = []  # The GAN as trained, before fit's query loop over the training rows changes it.
  t0 = time.time()
  with patch_pyod(pyod_anogan, snapshot=nets):
    det = make_detector(pyod_anogan, config, int(config.train.num_epochs)).fit(x_train)
  walls = {"fit": time.time() - t0}  # Training plus the query loop over the training rows.
  t0 = time.time()
  scores = {"decision_function": det.decision_function(x_test)}
  walls["decision_function"] = time.time() - t0
  order = np.random.default_rng(seed).permutation(len(x_test))
  runs = {"carry_over": (x_test, False, False)}
  runs.update({name: args for name, args in (
      ("carry_over_shuffled", (x_test[order], False, False)), ("fresh", (x_test, True, False)),
      ("fresh_frozen", (x_test, True, True))) if name in check})
  searches = {}
  for name, (rows, per_row, freeze) in runs.items():
    searches[name] = reference_search(pyod_anogan, config, nets, rows, per_row, freeze, seed)
    walls[name] = searches[name]["wall_s"]
    scores[name] = searches[name]["scores"]
    logging.info("seed %d: %s done (%.0f s)", seed, name, walls[name])
  extra = {}
  if "carry_over_shuffled" in searches:
    scores["carry_over_shuffled"] = np.empty_like(scores["carry_over_shuffled"])
    scores["carry_over_shuffled"][order] = searches["carry_over_shuffled"]["scores"]
    rel = np.abs(scores["carry_over_shuffled"] - scores["carry_over"]) / scores["carry_over"]
    extra["order_dependence"] = {"max_rel_diff": float(rel.max()),
                                 "median_rel_diff": float(np.median(rel))}
  frozen = searches.get("fresh_frozen")
  ours = ours_on_reference_nets(config, nets, x_test, frozen and frozen["z0"], seed)
  extra["flax_vs_torch_max_abs"] = ours["flax_vs_torch_max_abs"]
  for name in ("ours_config", "ours_ref_loss", "ours_ref_loss_ulp"):
    if name in ours:
      scores[name], walls[name] = ours[name]["scores"], ours[name]["wall_s"]
  if frozen:
    extra["search_check"] = {
        "ours_vs_fresh_frozen": compare_searches(frozen, ours["ours_ref_loss"]),
        "ours_vs_ours_one_ulp": compare_searches(ours["ours_ref_loss"], ours["ours_ref_loss_ulp"])}
    if "fresh" in searches:
      extra["search_check"]["fresh_vs_fresh_frozen"] = compare_searches(frozen, searches["fresh"])
  aurocs = {k: float(sk_metrics.roc_auc_score(y_test, v)) for k, v in scores.items()}
  return {"seed": seed, "auroc": aurocs, "wall_s": walls, **extra,
          "steps": len(det.hist_loss_generator), "n_train": len(x_train),
          "n_test": len(x_test), "d_loss": det.hist_loss_discriminator,
          "g_loss": det.hist_loss_generator, "y_test": y_test.tolist(),
          "scores": {k: np.asarray(v).tolist() for k, v in scores.items()}}


def ms(values) -> str:
  return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def ours_runs(workdir: str, seeds: list[int]) -> list[dict]:
  """Our benchmark runs (results.json and TensorBoard losses) of `seeds`."""
  runs = []
  for seed in seeds:
    folder = os.path.join(workdir, "anogan", "all", f"seed{seed}")
    with open(os.path.join(folder, "results.json")) as f:
      r = json.load(f)
    runs.append({"auroc": {k: v["auroc"] for k, v in r["metrics"].items() if "auroc" in v},
                 "wall_s": r["wall_time_s"], "steps": int(r["steps"]),
                 "scalars": common.read_scalars(os.path.join(folder, "tensorboard"))})
  return runs


def print_tables(runs: list[dict], ours: list[dict] | None, num_epochs: int) -> None:
  """Markdown: AUROC and wall times, losses over training, the search-level check."""
  print("| scorer | AUROC (mean ± std over seeds) |\n|---|---|")
  if ours:
    for key in ("score", "score_residual", "score_feature"):
      print(f"| ours (our training, our search): {key} | {ms([r['auroc'][key] for r in ours])} |")
  for key in runs[0]["auroc"]:
    vals = [r["auroc"][key] for r in runs if key in r["auroc"]]
    print(f"| PyOD's nets: {key} ({len(vals)} seeds) | {ms(vals)} |")
  print("\n| wall time, mean per seed (s) | value |\n|---|---|")
  if ours:
    for key in ("train", "score", "total"):
      print(f"| ours: {key} | {np.mean([r['wall_s'][key] for r in ours]):.1f} |")
  for key in runs[0]["wall_s"]:
    vals = [r["wall_s"][key] for r in runs if key in r["wall_s"]]
    print(f"| PyOD's side: {key} | {np.mean(vals):.1f} |")
  print("\nTraining losses, mean over seeds: ours at that step (TensorBoard, instantaneous) / "
        "PyOD's mean over the steps of that epoch")
  print("| epoch | ours d_loss | PyOD d_loss | ours g_loss | PyOD g_loss |\n|---|---|---|---|---|")
  ref_per_epoch = runs[0]["steps"] / num_epochs
  for fraction in LOSS_FRACTIONS:
    epoch = fraction * num_epochs
    row = [f"{epoch:g}"]
    lo, hi = int(round((np.ceil(epoch) - 1) * ref_per_epoch)), int(round(np.ceil(epoch) * ref_per_epoch))
    for ours_tag, ref_key in (("train/d_loss", "d_loss"), ("train/g_loss", "g_loss")):
      vals = []
      if ours:
        step = int(round(fraction * ours[0]["steps"]))
        vals = [r["scalars"][ours_tag][step] for r in ours if step in r["scalars"][ours_tag]]
      row.append(f"{np.mean(vals):.3f}" if vals else "-")
      row.append(f"{np.mean([np.mean(r[ref_key][lo:hi]) for r in runs]):.3f}")
    print("| " + " | ".join(row) + " |")
  checks = [r for r in runs if "search_check" in r]
  if not checks:
    return
  print("\nSearch-level check, same weights, same z0 per row: per-row final scores and per-step "
        "losses of each pair (A_vs_B)")
  print("| seed | search | Pearson r | max rel. diff | median rel. diff | max rel. diff, any step |")
  print("|---|---|---|---|---|---|")
  for r in checks:
    for name, c in r["search_check"].items():
      print(f"| {r['seed']} | {name} | {c['pearson']:.7f} | {c['max_rel_diff']:.2e} | "
            f"{c['median_rel_diff']:.2e} | {max(c['max_rel_diff_per_step']):.2e} |")
  print("\n| seed | carry_over vs carry_over_shuffled: max / median rel. diff | "
        "Flax vs torch nets, max abs diff |\n|---|---|---|")
  for r in checks:
    o = r.get("order_dependence")
    order = f"{o['max_rel_diff']:.3f} / {o['median_rel_diff']:.3f}" if o else "-"
    print(f"| {r['seed']} | {order} | {r['flax_vs_torch_max_abs']:.1e} |")
  steps = len(checks[0]["search_check"]["ours_vs_fresh_frozen"]["mean_loss_per_step"]["ours"])
  print("\nMean search loss over test rows at step t (seed %d)" % checks[0]["seed"])
  print("| step | fresh_frozen (PyOD, z only) | ours_ref_loss | fresh (PyOD as shipped) |")
  print("|---|---|---|---|")
  frozen = checks[0]["search_check"]["ours_vs_fresh_frozen"]["mean_loss_per_step"]
  shipped = checks[0]["search_check"].get("fresh_vs_fresh_frozen")
  for t in sorted({0, 1, 10, 50, 100, 200, steps - 1} & set(range(steps))):
    as_shipped = f"{shipped['mean_loss_per_step']['ours'][t]:.5f}" if shipped else "-"
    print(f"| {t} | {frozen['reference'][t]:.5f} | {frozen['ours'][t]:.5f} | {as_shipped} |")


def main(argv):
  del argv
  import torch  # pylint: disable=import-outside-toplevel
  torch.set_num_threads(_THREADS.value)
  pyod, pyod_anogan = import_pyod(_PYOD_PATH.value)
  config = flags.FLAGS.config
  check_config(config)
  seeds = [int(s) for s in _SEEDS.value]
  check_seeds = [int(s) for s in _CHECK_SEEDS.value] or seeds
  runs = []
  t0 = time.time()
  for seed in seeds:
    runs.append(run_one(pyod_anogan, config, seed,
                        tuple(_CHECK_SEARCHES.value) if seed in check_seeds else ()))
    logging.info("seed %d: %s", seed, {k: round(v, 4) for k, v in runs[-1]["auroc"].items()})
  result = {"reference": "pyod.models.anogan.AnoGAN", "pyod": pyod.__version__,
            "torch": torch.__version__, "jax": jax.__version__,
            "command": "python " + " ".join(sys.argv),
            "config": json.loads(config.to_json_best_effort()),
            "total_wall_s": time.time() - t0, "runs": runs}
  os.makedirs(os.path.dirname(os.path.abspath(_JSON_OUT.value)), exist_ok=True)
  with open(_JSON_OUT.value, "w") as f:
    json.dump(result, f, indent=1)
  print_tables(runs, ours_runs(_OURS.value, seeds) if _OURS.value else None,
               int(config.train.num_epochs))


if __name__ == "__main__":
  flags.mark_flags_as_required(["pyod_path", "config", "json_out"])
  app.run(main)
