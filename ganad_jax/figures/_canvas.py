"""The blank figure every `ganad_jax.figures` function draws on, its rendering, the class colours.

Figures are built without pyplot (no global state, no GUI backend) and
rendered by Agg.
"""

import numpy as np
from matplotlib import figure as mfigure
from matplotlib.backends import backend_agg

NORMAL_COLOR = "tab:blue"
ANOMALY_COLOR = "tab:red"
_DPI = 100


def new_figure(width: float, height: float) -> mfigure.Figure:
  """A constrained-layout figure of `width` x `height` inches with an Agg canvas."""
  fig = mfigure.Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
  backend_agg.FigureCanvasAgg(fig)
  return fig


def to_rgb_array(fig: mfigure.Figure) -> np.ndarray:
  """Renders `fig` with Agg to a uint8 (H, W, 3) array."""
  canvas = backend_agg.FigureCanvasAgg(fig)
  canvas.draw()
  return np.asarray(canvas.buffer_rgba())[..., :3].copy()
