"""Figures of a run, pure: numpy arrays in, a matplotlib figure (or an image array) out.

ROC / PR curves (`roc_pr_figure`, `overlay_curves_figure`), score histograms
(`score_histogram_figure`), reconstructions (`reconstruction_figure`),
anomaly maps next to masks (`heatmap_figure`), t-SNE (`tsne_figure`), a
generator's latent walk (`latent_walk_figure`), and uint8 image grids
(`image_grid`, `example_grid`). Figures are built without pyplot (no global
state, no GUI backend; rendered by Agg, `to_rgb_array`). Nothing here writes a
file: `ganad_jax.run_report` saves a run's figures, `run_outputs.save_png` one.

Conventions: images are (N, H, W, C) in [-1, 1], maps (N, H, W) >= 0, labels
1 = anomaly. Normal data are blue, anomalies red. Scores are shown raw; maps
of several images share one colour scale (never normalised per image), so a
bright map means a large residual, not merely the largest of its image.

Code by concern: `_score_plots` (curves, histograms), `_images` (images,
maps, latent walks, grids), `_embedding` (t-SNE), `_canvas` (the blank figure,
rendering, colours). Use them through this package: `figures.roc_pr_figure(...)`.
"""

# The package namespace is the one public name of each figure; the private
# modules only split the code by concern.
from ganad_jax.figures._canvas import ANOMALY_COLOR
from ganad_jax.figures._canvas import NORMAL_COLOR
from ganad_jax.figures._canvas import to_rgb_array
from ganad_jax.figures._embedding import tsne_figure
from ganad_jax.figures._images import example_grid
from ganad_jax.figures._images import heatmap_figure
from ganad_jax.figures._images import image_grid
from ganad_jax.figures._images import latent_walk_figure
from ganad_jax.figures._images import pick_examples
from ganad_jax.figures._images import reconstruction_figure
from ganad_jax.figures._score_plots import overlay_curves_figure
from ganad_jax.figures._score_plots import roc_pr_figure
from ganad_jax.figures._score_plots import score_histogram_figure

__all__ = [
    "ANOMALY_COLOR",
    "NORMAL_COLOR",
    "example_grid",
    "heatmap_figure",
    "image_grid",
    "latent_walk_figure",
    "overlay_curves_figure",
    "pick_examples",
    "reconstruction_figure",
    "roc_pr_figure",
    "score_histogram_figure",
    "to_rgb_array",
    "tsne_figure",
]
