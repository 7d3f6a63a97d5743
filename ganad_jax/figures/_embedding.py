"""A 2-D t-SNE embedding of features, normal and anomalous data coloured apart."""

import numpy as np
from matplotlib import figure as mfigure
from sklearn import manifold
import threadpoolctl

from ganad_jax.figures import _canvas as canvas


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
  fig = canvas.new_figure(5.6, 5.2)
  ax = fig.subplots()
  for value, name, color in ((0, "normal", canvas.NORMAL_COLOR),
                             (1, "anomalous", canvas.ANOMALY_COLOR)):
    selected = embedded[labels == value]
    ax.scatter(selected[:, 0], selected[:, 1], s=9, alpha=0.7, color=color,
               label=f"{name} (n={len(selected)})")
  ax.set(xlabel="t-SNE 1", ylabel="t-SNE 2", title=title)
  ax.set_xticks([])
  ax.set_yticks([])
  ax.legend(fontsize="small")
  return fig
