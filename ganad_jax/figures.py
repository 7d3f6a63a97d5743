"""Figures of a run, pure: numpy arrays in, a matplotlib figure (or an image array) out.

ROC / PR curves (`roc_pr_figure`, `overlay_curves_figure`), score histograms
(`score_histogram_figure`), reconstructions (`reconstruction_figure`),
anomaly maps next to masks (`heatmap_figure`), t-SNE (`tsne_figure`), a
generator's latent walk (`latent_walk_figure`), and uint8 image grids
(`image_grid`, `example_grid`). Figures are built without pyplot (no global
state, no GUI backend; rendered by Agg, `to_rgb_array`). Nothing here writes a
file: `ganad_jax.report` saves a run's figures, `reporting.save_png` one.

Conventions: images are (N, H, W, C) in [-1, 1], maps (N, H, W) >= 0, labels
1 = anomaly. Normal data are blue, anomalies red. Scores are shown raw; maps
of several images share one colour scale (never normalised per image), so a
bright map means a large residual, not merely the largest of its image.
"""

import numpy as np
from matplotlib import colors as mcolors
from matplotlib import figure as mfigure
from matplotlib.backends import backend_agg
from sklearn import manifold
from sklearn import metrics as sk_metrics
import threadpoolctl

from ganad_jax import metrics as metrics_lib

NORMAL_COLOR = "tab:blue"
ANOMALY_COLOR = "tab:red"
_DPI = 100


def _figure(width: float, height: float) -> mfigure.Figure:
  fig = mfigure.Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
  backend_agg.FigureCanvasAgg(fig)
  return fig


def to_rgb_array(fig: mfigure.Figure) -> np.ndarray:
  """Renders `fig` with Agg to a uint8 (H, W, 3) array."""
  canvas = backend_agg.FigureCanvasAgg(fig)
  canvas.draw()
  return np.asarray(canvas.buffer_rgba())[..., :3].copy()


# ---------------------------------------------------------------------------
# Curves and histograms
# ---------------------------------------------------------------------------


def _binary(labels, scores, what: str) -> tuple[np.ndarray, np.ndarray]:
  labels = np.asarray(labels).astype(np.int64).reshape(-1)
  scores = np.asarray(scores, np.float64).reshape(-1)
  if labels.shape != scores.shape:
    raise ValueError(f"{what}: labels {labels.shape} and scores {scores.shape} differ in length.")
  return labels, scores


def _roc_pr_axes(fig: mfigure.Figure):
  ax_roc, ax_pr = fig.subplots(1, 2)
  ax_roc.plot([0, 1], [0, 1], ls=":", color="gray", lw=1, label="chance")
  ax_roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC",
             xlim=(0, 1), ylim=(0, 1.01), aspect="equal")
  ax_pr.set(xlabel="recall", ylabel="precision", title="precision-recall",
            xlim=(0, 1), ylim=(0, 1.01), aspect="equal")
  for ax in (ax_roc, ax_pr):
    ax.grid(alpha=0.3)
  return ax_roc, ax_pr


def _draw_curves(ax_roc, ax_pr, labels, scores, color, label_prefix: str, lw=1.8, alpha=1.0,
                 with_label=True):
  auroc = metrics_lib.auroc(labels, scores)  # Raises on NaN, constant scores, one class.
  auprc = metrics_lib.auprc(labels, scores)
  fpr, tpr, _ = sk_metrics.roc_curve(labels, scores)
  precision, recall, _ = sk_metrics.precision_recall_curve(labels, scores)
  ax_roc.plot(fpr, tpr, color=color, lw=lw, alpha=alpha,
              label=f"{label_prefix}AUROC {auroc:.3f}" if with_label else None)
  ax_pr.step(recall, precision, where="post", color=color, lw=lw, alpha=alpha,
             label=f"{label_prefix}AUPRC {auprc:.3f}" if with_label else None)
  return auroc, auprc


def roc_pr_figure(labels, scores, title: str = "") -> mfigure.Figure:
  """ROC and precision-recall curves of one set of raw scores (higher = more anomalous).

  Args:
    labels: (N,) 1 = anomaly.
    scores: (N,) raw anomaly scores.
    title: figure title.

  Returns:
    A figure with the ROC (with the chance diagonal) and the PR curve (with the
    chance level, the fraction of anomalies); AUROC / AUPRC in the legends.
  """
  labels, scores = _binary(labels, scores, "roc_pr_figure")
  fig = _figure(9, 4.4)
  ax_roc, ax_pr = _roc_pr_axes(fig)
  _draw_curves(ax_roc, ax_pr, labels, scores, ANOMALY_COLOR, "")
  ax_pr.axhline(labels.mean(), ls=":", color="gray", lw=1,
                label=f"chance {labels.mean():.3f}")
  ax_roc.legend(loc="lower right")
  ax_pr.legend(loc="lower left")
  if title:
    fig.suptitle(title)
  return fig


def overlay_curves_figure(curves: dict, title: str = "") -> mfigure.Figure:
  """ROC and PR curves of several methods (or scores) on the same axes.

  Args:
    curves: name -> (labels, scores), or name -> a list of (labels, scores)
      (e.g. one per seed: each is drawn thin in the method's colour and the
      legend gives the mean +- std of AUROC / AUPRC over the list).
    title: figure title.

  Returns:
    The figure.
  """
  if not curves:
    raise ValueError("overlay_curves_figure needs at least one (labels, scores) entry.")
  fig = _figure(10, 4.8)
  ax_roc, ax_pr = _roc_pr_axes(fig)
  palette = list(mcolors.TABLEAU_COLORS.values())
  positive_rates = []
  for i, (name, runs) in enumerate(curves.items()):
    runs = [runs] if isinstance(runs, tuple) else list(runs)
    color = palette[i % len(palette)]
    if len(runs) == 1:
      labels, scores = _binary(*runs[0], f"curves[{name!r}]")
      _draw_curves(ax_roc, ax_pr, labels, scores, color, f"{name}: ")
      positive_rates.append(labels.mean())
      continue
    aurocs, auprcs = [], []
    for labels, scores in runs:
      labels, scores = _binary(labels, scores, f"curves[{name!r}]")
      a, p = _draw_curves(ax_roc, ax_pr, labels, scores, color, "", lw=1.0, alpha=0.7,
                          with_label=False)
      aurocs.append(a)
      auprcs.append(p)
      positive_rates.append(labels.mean())
    n = len(runs)
    ax_roc.plot([], [], color=color,
                label=f"{name}: AUROC {np.mean(aurocs):.3f} ± {np.std(aurocs):.3f} ({n} runs)")
    ax_pr.plot([], [], color=color,
               label=f"{name}: AUPRC {np.mean(auprcs):.3f} ± {np.std(auprcs):.3f} ({n} runs)")
  if np.ptp(positive_rates) < 1e-9:  # One chance level only when every run shares it.
    ax_pr.axhline(positive_rates[0], ls=":", color="gray", lw=1,
                  label=f"chance {positive_rates[0]:.3f}")
  ax_roc.legend(loc="best", fontsize="small")  # Curves below chance must stay visible.
  ax_pr.legend(loc="best", fontsize="small")
  if title:
    fig.suptitle(title)
  return fig


def score_histogram_figure(labels, scores, threshold: float | None = None, val_scores=None,
                           title: str = "", threshold_label: str = "threshold") -> mfigure.Figure:
  """Histograms of the raw scores of normal and anomalous test data, with the threshold.

  Args:
    labels: (N,) 1 = anomaly.
    scores: (N,) raw anomaly scores.
    threshold: drawn as a vertical dashed line when given.
    val_scores: optional validation-normal scores, drawn as an outline.
    title: figure title.
    threshold_label: legend text of the threshold line.

  Returns:
    The figure. Each histogram shows the fraction of its class per bin (the
    classes differ in size); the x axis and bins are logarithmic when every
    score is positive and they span more than three decades.
  """
  labels, scores = _binary(labels, scores, "score_histogram_figure")
  every = [scores] + ([np.asarray(val_scores, np.float64).ravel()] if val_scores is not None
                      else [])
  if threshold is not None:
    every.append(np.asarray([threshold], np.float64))
  every = np.concatenate(every)
  if not np.all(np.isfinite(every)):
    raise ValueError("score_histogram_figure: scores, val_scores or threshold hold NaN/Inf.")
  lo, hi = float(every.min()), float(every.max())
  log_x = lo > 0 and hi / lo > 1e3
  if log_x:
    bins = np.geomspace(lo, hi, 41)
  else:
    bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 41)
  fig = _figure(7, 4.2)
  ax = fig.subplots()
  for value, name, color in ((0, "normal", NORMAL_COLOR), (1, "anomalous", ANOMALY_COLOR)):
    selected = scores[labels == value]
    if len(selected):
      ax.hist(selected, bins=bins, weights=np.full(len(selected), 1.0 / len(selected)),
              alpha=0.5, color=color, label=f"test {name} (n={len(selected)})")
  if val_scores is not None:
    val_scores = np.asarray(val_scores, np.float64).ravel()
    ax.hist(val_scores, bins=bins, weights=np.full(len(val_scores), 1.0 / len(val_scores)),
            histtype="step", color="black", lw=1.2, label=f"val normal (n={len(val_scores)})")
  if threshold is not None:
    ax.axvline(threshold, color="black", ls="--", lw=1.5,
               label=f"{threshold_label} = {threshold:.4g}")
  if log_x:
    ax.set_xscale("log")
  ax.set(xlabel="anomaly score (raw, higher = more anomalous)",
         ylabel="fraction of the class per bin")
  ax.legend(fontsize="small")
  ax.grid(alpha=0.3)
  if title:
    ax.set_title(title)
  return fig


# ---------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------


def _display(images: np.ndarray) -> tuple[np.ndarray, str | None]:
  """[-1, 1] images (N, H, W, C) -> [0, 1] for imshow, and the colour map for grayscale."""
  images = np.clip((np.asarray(images, np.float32) + 1.0) / 2.0, 0.0, 1.0)
  if images.ndim == 4 and images.shape[-1] == 1:
    return images[..., 0], "gray"
  return images, None


def _check_images(x, what: str) -> np.ndarray:
  x = np.asarray(x)
  if x.ndim != 4 or x.shape[-1] not in (1, 3):
    raise ValueError(f"{what} must be images (N, H, W, C) with C in (1, 3); got {x.shape}.")
  return x


def pick_examples(labels, n: int, prefer=None) -> np.ndarray:
  """Indices of up to `n` examples: the first n - n // 2 normals, then n // 2 anomalies.

  Args:
    labels: (N,) 1 = anomaly.
    n: how many to pick.
    prefer: optional boolean (N,) restricting the anomalies (e.g. those whose
      mask holds defect pixels) when enough of them exist.

  Returns:
    Indices in that order; if one class runs short, the other fills in.
  """
  labels = np.asarray(labels)
  normal, anomalous = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
  if prefer is not None:
    preferred = np.flatnonzero((labels == 1) & np.asarray(prefer, bool))
    if len(preferred):
      anomalous = np.concatenate([preferred, np.setdiff1d(anomalous, preferred)])
  n_anom = min(n // 2, len(anomalous))
  n_norm = min(n - n_anom, len(normal))
  n_anom = min(n - n_norm, len(anomalous))
  return np.concatenate([normal[:n_norm], anomalous[:n_anom]]).astype(np.int64)


def _caption(labels, scores, i: int) -> tuple[str, str]:
  text, color = "", "black"
  if labels is not None:
    is_anom = int(labels[i]) == 1
    text, color = ("anomaly" if is_anom else "normal"), (ANOMALY_COLOR if is_anom else
                                                         NORMAL_COLOR)
  if scores is not None:
    text += f"\n{float(scores[i]):.3g}"
  return text, color


def reconstruction_figure(x, recon, residual=None, labels=None, scores=None, title: str = "",
                          residual_label: str = "residual") -> mfigure.Figure:
  """Input / reconstruction / residual grid: one column per example.

  Args:
    x: (n, H, W, C) inputs in [-1, 1].
    recon: (n, H, W, C) reconstructions in [-1, 1].
    residual: optional (n, H, W) map for the third row (e.g. the method's
      anomaly map); default: squared residual averaged over channels.
    labels: optional (n,) labels for the column captions.
    scores: optional (n,) scores for the column captions.
    title: figure title.
    residual_label: name of the third row.

  Returns:
    The figure; the residual row shares one colour scale (0 to its maximum),
    shown by a colour bar.
  """
  x = _check_images(x, "x")
  recon = _check_images(recon, "recon")
  if recon.shape != x.shape:
    raise ValueError(f"recon {recon.shape} and x {x.shape} differ in shape.")
  if residual is None:
    residual = np.mean(np.square(x.astype(np.float32) - recon), axis=-1)
  residual = np.asarray(residual, np.float32)
  if residual.shape != x.shape[:3]:
    raise ValueError(f"residual must be (n, H, W) = {x.shape[:3]}; got {residual.shape}.")
  n = len(x)
  fig = _figure(1.3 * n + 1.4, 4.4)
  axes = fig.subplots(3, n, squeeze=False)
  shown_x, cmap = _display(x)
  shown_r, _ = _display(recon)
  vmax = max(float(residual.max()), 1e-8)
  im = None
  for i in range(n):
    axes[0, i].imshow(shown_x[i], cmap=cmap, vmin=0, vmax=1)
    axes[1, i].imshow(shown_r[i], cmap=cmap, vmin=0, vmax=1)
    im = axes[2, i].imshow(residual[i], cmap="inferno", vmin=0, vmax=vmax)
    text, color = _caption(labels, scores, i)
    axes[0, i].set_title(text, color=color, fontsize="small")
  for ax in axes.ravel():
    ax.set_xticks([])
    ax.set_yticks([])
  for row, name in enumerate(("input", "reconstruction", residual_label)):
    axes[row, 0].set_ylabel(name)
  fig.colorbar(im, ax=axes[2, :].tolist(), shrink=0.9, label=residual_label)
  if title:
    fig.suptitle(title)
  return fig


def heatmap_figure(x, maps, masks, labels=None, scores=None, vmax: float | None = None,
                   title: str = "") -> mfigure.Figure:
  """Anomaly map over the input next to the ground-truth mask: one row per example.

  Columns: the input; the ground-truth mask; the map alone; the map drawn over
  the input (semi-transparent, with the mask's outline in lime green). One
  colour bar on the right holds for every map.

  Args:
    x: (n, H, W, C) inputs in [-1, 1].
    maps: (n, H, W) anomaly maps (>= 0 for residuals; any real values work).
    masks: (n, H, W) ground truth in {0, 1}.
    labels: optional (n,) labels for the row captions.
    scores: optional (n,) image scores for the row captions.
    vmax: top of the shared colour scale; default: the maximum of `maps`.
      Pass a quantile of all test maps to compare figures.
    title: figure title.

  Returns:
    The figure.
  """
  x = _check_images(x, "x")
  maps = np.asarray(maps, np.float32)
  masks = np.asarray(masks, np.float32)
  if maps.shape != x.shape[:3] or masks.shape != x.shape[:3]:
    raise ValueError(f"maps {maps.shape} and masks {masks.shape} must both be (n, H, W) = "
                     f"{x.shape[:3]}.")
  n = len(x)
  vmin = min(0.0, float(maps.min()))
  vmax = float(maps.max()) if vmax is None else float(vmax)
  vmax = max(vmax, vmin + 1e-8)
  fig = _figure(8.2, 1.9 * n + 0.6)
  axes = fig.subplots(n, 4, squeeze=False)
  shown, cmap = _display(x)
  im = None
  for i in range(n):
    axes[i, 0].imshow(shown[i], cmap=cmap, vmin=0, vmax=1)
    axes[i, 1].imshow(masks[i], cmap="gray", vmin=0, vmax=1)
    im = axes[i, 2].imshow(maps[i], cmap="jet", vmin=vmin, vmax=vmax)
    axes[i, 3].imshow(shown[i], cmap=cmap, vmin=0, vmax=1)
    axes[i, 3].imshow(maps[i], cmap="jet", alpha=0.45, vmin=vmin, vmax=vmax)
    if masks[i].any():
      axes[i, 3].contour(masks[i], levels=[0.5], colors="lime", linewidths=1.5)
    text, color = _caption(labels, scores, i)
    axes[i, 0].set_ylabel(text.replace("\n", " "), color=color, fontsize="small")
  for ax in axes.ravel():
    ax.set_xticks([])
    ax.set_yticks([])
  for col, name in enumerate(("input", "ground-truth mask", "anomaly map",
                              "map over input\n(green: mask outline)")):
    axes[0, col].set_title(name, fontsize="small")
  fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.6, label="anomaly map")
  if title:
    fig.suptitle(title)
  return fig


def tsne_figure(features, labels, seed: int = 0, max_points: int = 500,
                title: str = "t-SNE") -> mfigure.Figure:
  """A 2-D t-SNE (scikit-learn) of features, normal blue and anomalous red.

  Args:
    features: (N, ...) features; flattened to (N, D).
    labels: (N,) 1 = anomaly.
    seed: seed of the subsample and of t-SNE.
    max_points: at most this many points (a seeded subsample; t-SNE is O(N^2)).
    title: axes title.

  Returns:
    The figure.
  """
  features = np.asarray(features, np.float32)
  features = features.reshape(len(features), -1)
  labels = np.asarray(labels).astype(np.int64).reshape(-1)
  if len(features) != len(labels):
    raise ValueError(f"features ({len(features)}) and labels ({len(labels)}) differ in length.")
  if len(features) < 5:
    raise ValueError(f"t-SNE needs at least 5 points; got {len(features)}.")
  if not np.all(np.isfinite(features)):
    raise ValueError("tsne_figure: features hold NaN/Inf.")
  rng = np.random.default_rng(seed)
  if len(features) > max_points:
    keep = np.sort(rng.choice(len(features), max_points, replace=False))
    features, labels = features[keep], labels[keep]
  perplexity = float(min(30.0, (len(features) - 1) / 3.0))
  # One OpenMP thread: on a busy machine Barnes-Hut's spinning threads made a
  # 500-point t-SNE take 40 s instead of 2 s.
  with threadpoolctl.threadpool_limits(1):
    embedded = manifold.TSNE(n_components=2, perplexity=perplexity, init="pca",
                             random_state=seed).fit_transform(features)
  fig = _figure(5.6, 5.2)
  ax = fig.subplots()
  for value, name, color in ((0, "normal", NORMAL_COLOR), (1, "anomalous", ANOMALY_COLOR)):
    selected = embedded[labels == value]
    ax.scatter(selected[:, 0], selected[:, 1], s=9, alpha=0.7, color=color,
               label=f"{name} (n={len(selected)})")
  ax.set(xlabel="t-SNE 1", ylabel="t-SNE 2", title=title)
  ax.set_xticks([])
  ax.set_yticks([])
  ax.legend(fontsize="small")
  return fig


def latent_walk_figure(generate_fn, z0, z1, steps: int = 8, title: str = "") -> mfigure.Figure:
  """Outputs of a generator along the straight line from `z0` to `z1`.

  Args:
    generate_fn: maps latents (steps, nz) to images (steps, H, W, C) in
      [-1, 1], or to vectors (steps, F) (drawn as one heat-map row each).
    z0: (nz,) start latent.
    z1: (nz,) end latent.
    steps: number of points, both ends included (>= 2).
    title: figure title.

  Returns:
    The figure, with t in [0, 1] under each image.
  """
  z0, z1 = np.asarray(z0, np.float32).ravel(), np.asarray(z1, np.float32).ravel()
  if z0.shape != z1.shape:
    raise ValueError(f"z0 {z0.shape} and z1 {z1.shape} differ in shape.")
  if steps < 2:
    raise ValueError(f"steps must be >= 2; got {steps}.")
  t = np.linspace(0.0, 1.0, steps, dtype=np.float32)
  out = np.asarray(generate_fn((1.0 - t)[:, None] * z0 + t[:, None] * z1), np.float32)
  if len(out) != steps:
    raise ValueError(f"generate_fn returned {len(out)} outputs for {steps} latents.")
  if out.ndim == 2:
    fig = _figure(7, 0.35 * steps + 1.4)
    ax = fig.subplots()
    im = ax.imshow(out, aspect="auto", cmap="viridis")
    ax.set(xlabel="feature", ylabel="t", yticks=range(steps),
           yticklabels=[f"{v:.2f}" for v in t])
    fig.colorbar(im, ax=ax)
  else:
    out = _check_images(out, "generate_fn output")
    shown, cmap = _display(out)
    fig = _figure(1.2 * steps, 1.8)
    axes = fig.subplots(1, steps, squeeze=False)[0]
    for i, ax in enumerate(axes):
      ax.imshow(shown[i], cmap=cmap, vmin=0, vmax=1)
      ax.set_xticks([])
      ax.set_yticks([])
      ax.set_xlabel(f"t={t[i]:.2f}", fontsize="small")
  if title:
    fig.suptitle(title)
  return fig


# ---------------------------------------------------------------------------
# Image grids
# ---------------------------------------------------------------------------


def image_grid(rows: list[np.ndarray]) -> np.ndarray:
  """Stacks rows of images (each (n, H, W[, C]) in [-1, 1], or maps >= 0) into one uint8 HWC grid.

  Maps (no channel axis) are scaled by their row's maximum, so a row of
  residuals is readable next to its inputs.
  """
  out = []
  for row in rows:
    row = np.asarray(row, np.float32)
    if row.ndim == 3:
      row = row / max(float(row.max()), 1e-8) * 2.0 - 1.0
      row = row[..., None]
    if row.shape[-1] == 1:
      row = np.repeat(row, 3, axis=-1)
    row = np.pad(row, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=1.0)
    out.append(np.concatenate(list(row), axis=1))
  grid = np.concatenate(out, axis=0)
  return np.clip((grid + 1.0) * 127.5, 0, 255).astype(np.uint8)


def example_grid(test, test_out: dict, size: int):
  """Input / reconstruction / map / mask rows of `size` test images, as one uint8 HWC grid.

  The first `size - size // 2` normals and `size // 2` anomalies of `test`
  (a `data.Split`); None unless the split holds images, `test_out` (score
  outputs) a "recon", and `size` > 0.
  """
  if test.x.ndim != 4 or "recon" not in test_out or size <= 0:
    return None
  normal, anomalous = np.flatnonzero(test.y == 0), np.flatnonzero(test.y == 1)
  idx = np.concatenate([normal[:size - size // 2], anomalous[:size // 2]])
  rows = [test.x[idx], test_out["recon"][idx]]
  if "map" in test_out:
    rows.append(test_out["map"][idx])
  if test.masks is not None:
    rows.append(test.masks[idx])
  return image_grid(rows)
