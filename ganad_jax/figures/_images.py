"""Figures of images and maps: reconstructions, anomaly maps over masks, latent walks, grids.

Images are (N, H, W, C) in [-1, 1]; maps (N, H, W) of several images share one
colour scale (never normalised per image).
"""

import numpy as np
from matplotlib import figure as mfigure

from ganad_jax.figures import _canvas as canvas


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
    text, color = ("anomaly" if is_anom else "normal"), (canvas.ANOMALY_COLOR if is_anom else
                                                         canvas.NORMAL_COLOR)
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
  fig = canvas.new_figure(1.3 * n + 1.4, 4.4)
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
  fig = canvas.new_figure(8.2, 1.9 * n + 0.6)
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
    fig = canvas.new_figure(7, 0.35 * steps + 1.4)
    ax = fig.subplots()
    im = ax.imshow(out, aspect="auto", cmap="viridis")
    ax.set(xlabel="feature", ylabel="t", yticks=range(steps),
           yticklabels=[f"{v:.2f}" for v in t])
    fig.colorbar(im, ax=ax)
  else:
    out = _check_images(out, "generate_fn output")
    shown, cmap = _display(out)
    fig = canvas.new_figure(1.2 * steps, 1.8)
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
