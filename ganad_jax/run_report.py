"""A run's report: results.json / results.md, TensorBoard, figures/ and scores.npz.

`results` assembles a trained run's results (the content of results.json:
data, sizes, steps, every member's metrics and, for an ensemble, the table of
mean ± std over seeds); its metrics part, `member_results`, is also what
experiments/evaluate.py reports (one result builder for both); `write` writes the report into the workdir: the test
metrics and image grid to TensorBoard, `reconstructions.png`, every figure that
applies (`write_run_figures`, into `figures/`, with `scores.npz`),
results.json and results.md. `benchmark_figures` walks a benchmark's layout
(`benchmark.run_dir`) and overlays the ROC curves of its methods from their
`scores.npz`. The figures themselves are `ganad_jax.figures`; every file goes
through `run_outputs.write_atomic`.
"""

import os

import jax
from matplotlib import figure as mfigure
import ml_collections
import numpy as np

from ganad_jax import data
from ganad_jax import ensemble
from ganad_jax import figures
from ganad_jax import result_tables
from ganad_jax import run_outputs
from ganad_jax import runner

FIGURES_DIR = "figures"
SCORES_FILE = "scores.npz"


def results(config: ml_collections.ConfigDict, splits: data.Splits, run: runner.Run,
            info: dict, member_metrics: list[dict], wall_time_s: dict) -> dict:
  """The content of results.json of a trained and scored run.

  Args:
    config: the run's config (recorded whole: what `workdir.finished_results`
      compares before a grid reuses the run).
    splits: its data (`info` without file lists, and the split sizes).
    run: its `runner.Run`.
    info: `train.train`'s info (steps, final train metrics, early stopping;
      per-member lists for an ensemble).
    member_metrics: per member, `evaluation.evaluate`'s result.
    wall_time_s: {"train", "score", "total"} seconds.

  Returns:
    For a single run its metrics at the top level; for an ensemble every
    member's metrics under "members" and their `result_tables.mean_std_over_seeds` table.
  """
  out = {
      "method": config.method,
      "seed": config.seed,
      "data": {k: v for k, v in splits.info.items() if k != "files"},  # File lists stay out.
      "sizes": {k: int(len(getattr(splits, k).x)) for k in ("train", "val", "test")},
      "steps": info["steps"],
      "batch_size": config.train.batch_size,
      "config": config.to_dict(),  # What `workdir.finished_results` compares before reuse.
  }
  early_keys = [k for k in ("stopped_early", "best_step", "best_val_score") if k in info]
  final = info["final_train_metrics"]
  if run.stacked:
    extras = [{"final_train_metrics": final[m] if final else None,
               **{k: info[k][m] for k in early_keys}} for m in range(run.num_members)]
  else:
    extras = [{"final_train_metrics": final, **{k: info[k] for k in early_keys}}]
  out.update(member_results(config, run.members, member_metrics, extras))
  if "weights" in run.meta:  # Pretrained weights: file, SHA-256, backbone, normalisation.
    out["weights"] = run.meta["weights"]
  if "paper_repro" in info:  # Labelled apart: it chose an epoch on test labels.
    out["paper_repro"] = info["paper_repro"]
  out.update({
      "wall_time_s": wall_time_s,
      "devices": f"{jax.device_count()} x {jax.devices()[0].device_kind}",
      "mesh": dict(run.mesh.shape),
      "jax_version": jax.__version__,
  })
  return out


def member_results(config: ml_collections.ConfigDict, members: ensemble.Members | None,
                   member_metrics: list[dict], extras: list[dict] | None = None) -> dict:
  """The metrics part of a run's results: what training and experiments/evaluate.py report.

  Args:
    config: the run's config (its ensemble grid).
    members: the ensemble's members, or None for a single run.
    member_metrics: per member (one for a single run), `evaluation.evaluate`'s
      result, or any dict of that member's numbers (e.g. score quantiles of
      a normal-only split).
    extras: per member, more entries for its record (train metrics, early
      stopping), placed before its metrics; default none.

  Returns:
    For a single run its extras and metrics at the top level; for an
    ensemble "ensemble" (seeds, grid, size, split seed), "members" (every
    member's seed, grid point, extras and metrics) and, when the members
    have "metrics", "table" (`result_tables.mean_std_over_seeds`: mean ± std over seeds per
    grid point).
  """
  extras = extras or [{} for _ in member_metrics]
  if members is None:
    return {**extras[0], **member_metrics[0]}
  member_records = [{"member": m, "seed": members.seeds[m], "point": dict(members.points[m]),
                     **extra, **metrics}
                    for m, (extra, metrics) in enumerate(zip(extras, member_metrics))]
  out = {"ensemble": {"seeds": sorted(set(members.seeds)),
                      "grid": config.ensemble.to_dict()["grid"],
                      "members": members.size, "split_seed": config.seed},
         "members": member_records}
  if "metrics" in member_metrics[0]:
    out["table"] = result_tables.mean_std_over_seeds(member_records)
  return out


def write(workdir: str, config: ml_collections.ConfigDict, run: runner.Run, state,
          splits: data.Splits, test: list[dict], val: list[dict], run_results: dict) -> None:
  """Writes a run's report into `workdir` (call it on process 0 only).

  TensorBoard: every member's test metrics, and member 0's input /
  reconstruction / map grid; `reconstructions.png` (that grid); member 0's
  figures (`write_run_figures`; its paths are added to `run_results` as
  "figures"); results.json (`run_results`); results.md (the single run's
  report, or the ensemble's table).

  Args:
    workdir: the run's directory.
    config: its config.
    run: its `runner.Run`.
    state: the trained state (for the latent walk of a generator method).
    splits: its data.
    test: per member, the score outputs of the test split.
    val: per member, those of the validation split.
    run_results: `results(...)`, with per-member metrics and thresholds.
  """
  step = run_results["steps"]
  member_metrics = run_results["members"] if run.stacked else [run_results]
  with run_outputs.tensorboard_writer(workdir) as writer:
    for m, metrics in enumerate(member_metrics):
      prefix = f"member{m}/" if run.stacked else ""
      for name, values in metrics["metrics"].items():
        for k, v in values.items():
          writer.add_scalar(run_outputs.tb_tag(f"{prefix}test/{name}/{k}"), v, step)
    grid = figures.example_grid(splits.test, test[0], config.train.image_grid_size)
    if grid is not None:  # Member 0's for an ensemble.
      writer.add_image("test/input_recon_map", grid, step, dataformats="HWC")
      run_outputs.save_image(os.path.join(workdir, "reconstructions.png"), grid)
    # Member 0's figures for an ensemble (its table covers every member).
    walk = {}
    if run.method.generate is not None:  # Between two z ~ N(0, I) drawn from the score key.
      generate = jax.jit(run.method.generate)
      walk = {"generate_fn": lambda z: generate(state, z),
              "latents": jax.random.normal(run.keys.score, (2, config.model.nz))}
    run_results["figures"] = write_run_figures(
        workdir, splits.test, test[0], val[0], member_metrics[0],
        member_metrics[0]["thresholds"]["score"], writer=writer, step=step, **walk)

  run_outputs.write_json(os.path.join(workdir, "results.json"), run_results)
  markdown = (result_tables.ensemble_results_markdown(run_results) if run.stacked
              else result_tables.results_markdown(run_results, run_results["figures"]))
  run_outputs.write_atomic(os.path.join(workdir, "results.md"), markdown)


def add_to_writer(writer, tag: str, fig: mfigure.Figure, step: int) -> None:
  """Logs `fig` as the image `tag` at `step` to a tensorboardX `SummaryWriter`."""
  writer.add_image(run_outputs.tb_tag(tag), figures.to_rgb_array(fig), step, dataformats="HWC")


def save_scores(path: str, labels, outputs: dict, kinds=None) -> None:
  """Writes labels ("y"), "kinds" and every score of `outputs` to an NPZ file.

  The keys are those of `experiments/evaluate.py --scores_out`: "y", "kinds",
  "score" and each "score_<name>", so either file serves `benchmark_figures`.
  """
  arrays = {"y": np.asarray(labels, np.int32)}
  for name in outputs:
    if name == "score" or name.startswith("score_"):
      arrays[name] = np.asarray(outputs[name], np.float32)
  if kinds is not None:
    arrays["kinds"] = np.asarray(kinds, dtype=str)
  run_outputs.save_npz(path, arrays)


def load_scores(path: str) -> dict[str, np.ndarray]:
  """Reads a `scores.npz` written by `save_scores` (or `evaluate.py --scores_out`)."""
  with np.load(path, allow_pickle=False) as f:
    arrays = {k: f[k] for k in f.files}
  if "y" not in arrays:
    raise ValueError(f"{path} holds no labels 'y'; its arrays: {sorted(arrays)}.")
  return arrays


def _features_for_tsne(test_split, test_outputs: dict) -> tuple[np.ndarray, str]:
  for key in ("features", "z"):
    if key in test_outputs:
      return np.asarray(test_outputs[key]), f"t-SNE of the model's {key!r} (test)"
  return np.asarray(test_split.x), "t-SNE of the test inputs"


def write_run_figures(workdir: str, test_split, test_outputs: dict, val_outputs: dict | None,
                      metrics: dict | None, threshold: float | None, writer=None, step: int = 0,
                      *, num_examples: int = 8, tsne_points: int = 500,
                      generate_fn=None, latents=None) -> list[str]:
  """Writes every figure that applies to a run into `workdir/figures/`, and `scores.npz`.

  Written when they apply (relative paths, in this order):
    figures/roc_pr.png          ROC and PR of the primary score;
    figures/roc_pr_scores.png   all scores overlaid, if there are alternatives;
    figures/score_hist.png      test normal vs anomalous scores, val normals, threshold;
    figures/reconstructions.png input / reconstruction / map (images with "recon");
    figures/anomaly_maps.png    map over input next to the mask (images with masks and "map");
    figures/tsne.png            t-SNE of outputs["features"] or ["z"] if present, else the inputs;
    figures/latent_walk.png     if `generate_fn` and `latents` (two latents) are given.
  `workdir/scores.npz` (labels "y", "kinds" and every score of the test split)
  is always written, so `benchmark_figures` can overlay runs later.

  Args:
    workdir: the run's directory.
    test_split: a `data.Split` (x, y, kinds, masks); None writes nothing.
    test_outputs: `evaluation.score_split` outputs of the test split.
    val_outputs: those of the validation split (its scores are drawn in the
      histogram), or None.
    metrics: `evaluation.evaluate`'s result (for titles), or None.
    threshold: the primary score's decision threshold; None falls back to
      `metrics["thresholds"]["score"]` when present.
    writer: optional tensorboardX `SummaryWriter`; every figure is also
      logged as the image `figures/<name>` at `step`.
    step: the TensorBoard step.
    num_examples: examples in the image grids (half normal, half anomalous).
    tsne_points: cap on t-SNE points (0 skips the t-SNE).
    generate_fn: optional latents (n, nz) -> images, for the latent walk.
    latents: (2, nz) start and end of the latent walk.

  Returns:
    Paths of the PNGs written, relative to `workdir` (for `results.md`).
  """
  if test_split is None:
    return []
  labels = np.asarray(test_split.y)
  save_scores(os.path.join(workdir, SCORES_FILE), labels, test_outputs, test_split.kinds)
  if threshold is None and metrics is not None:
    threshold = metrics.get("thresholds", {}).get("score")
  summary = (metrics or {}).get("metrics", {}).get("score", {})
  both_classes = labels.min() != labels.max()
  written = []

  def emit(name: str, fig: mfigure.Figure) -> None:
    relative = os.path.join(FIGURES_DIR, f"{name}.png")
    run_outputs.save_png(fig, os.path.join(workdir, relative))
    if writer is not None:
      add_to_writer(writer, f"figures/{name}", fig, step)
    written.append(relative)

  scores = np.asarray(test_outputs["score"])
  if both_classes:
    emit("roc_pr", figures.roc_pr_figure(labels, scores, title="test split, primary score"))
    alternatives = [k for k in test_outputs if k.startswith("score_")]
    if alternatives:
      curves = {k: (labels, np.asarray(test_outputs[k])) for k in ["score", *sorted(alternatives)]}
      emit("roc_pr_scores", figures.overlay_curves_figure(curves, title="test split, every score"))
  val_scores = None if val_outputs is None else np.asarray(val_outputs["score"])
  title = "test scores" + (f" (AUROC {summary['auroc']:.3f})" if "auroc" in summary else "")
  emit("score_hist", figures.score_histogram_figure(labels, scores, threshold, val_scores,
                                                    title=title))

  x = np.asarray(test_split.x)
  is_image = x.ndim == 4
  if is_image and "recon" in test_outputs and num_examples > 0:
    idx = figures.pick_examples(labels, num_examples)
    residual = np.asarray(test_outputs["map"])[idx] if "map" in test_outputs else None
    row = "residual" if residual is None else "anomaly map"
    emit("reconstructions", figures.reconstruction_figure(
        x[idx], np.asarray(test_outputs["recon"])[idx], residual, labels[idx], scores[idx],
        title=f"test examples: input, reconstruction, {row} (one colour scale)",
        residual_label=row))
  masks = test_split.masks
  if is_image and masks is not None and "map" in test_outputs and num_examples > 0:
    maps = np.asarray(test_outputs["map"])
    has_defect = masks.reshape(len(masks), -1).max(axis=1) > 0
    idx = figures.pick_examples(labels, min(num_examples, 6), prefer=has_defect)
    vmax = float(np.quantile(maps, 0.999))  # One scale for the whole test set.
    emit("anomaly_maps", figures.heatmap_figure(
        x[idx], maps[idx], masks[idx], labels[idx], scores[idx], vmax=vmax,
        title="anomaly maps (colour scale shared over the test set)"))
  if tsne_points > 0 and both_classes and len(labels) >= 5:
    features, tsne_title = _features_for_tsne(test_split, test_outputs)
    emit("tsne", figures.tsne_figure(features, labels, max_points=tsne_points, title=tsne_title))
  if generate_fn is not None and latents is not None:
    latents = np.asarray(latents)
    emit("latent_walk", figures.latent_walk_figure(generate_fn, latents[0], latents[1],
                                                   title="latent walk z0 -> z1"))
  return written


def benchmark_figures(root: str, score: str = "score") -> list[str]:
  """Overlays the ROC / PR curves of every method of a benchmark, one figure per class.

  Reads `<root>/<method>/<class>/seed<k>/scores.npz` (the layout of
  `ganad_jax.benchmark.run_dir`, written by `write_run_figures`); runs without
  it are skipped. Seeds of one method share its colour.

  Args:
    root: the benchmark's root directory.
    score: which score to plot ("score" or a "score_<name>").

  Returns:
    Paths of the PNGs written under `root/figures/`, relative to `root`.
  """
  runs: dict[str, dict[str, list]] = {}
  for method in sorted(os.listdir(root)) if os.path.isdir(root) else []:
    method_dir = os.path.join(root, method)
    if not os.path.isdir(method_dir) or method == FIGURES_DIR:
      continue
    for class_label in sorted(os.listdir(method_dir)):
      class_dir = os.path.join(method_dir, class_label)
      if not os.path.isdir(class_dir):
        continue
      for seed_dir in sorted(os.listdir(class_dir)):
        path = os.path.join(class_dir, seed_dir, SCORES_FILE)
        if not seed_dir.startswith("seed") or not os.path.exists(path):
          continue
        saved = load_scores(path)
        if score in saved:
          runs.setdefault(class_label, {}).setdefault(method, []).append(
              (saved["y"], saved[score]))
  written = []
  for class_label, curves in runs.items():
    relative = os.path.join(FIGURES_DIR, f"roc_{class_label}.png")
    fig = figures.overlay_curves_figure(curves,
                                        title=f"class {class_label}: {score} of each method")
    run_outputs.save_png(fig, os.path.join(root, relative))
    written.append(relative)
  return written
