"""Standard-normal log-likelihoods of flow outputs, in nats.

A flow f maps a feature x to z = f(x) with log|det df/dx| = logdet; under a
standard-normal base density, log p(x) = log N(z; 0, I) + logdet (change of
variables). The references' maps use the per-location quantity
-0.5 mean_c z_c^2 (`location_log_prob`): FastFlow (gathierry/FastFlow,
anomalib) and MSFlow (cool-xuan/msflow) leave out the constant and the
logdet; CFlow-AD (gudovskiy/cflow-ad `get_logp`) keeps both and divides by C.
"""

import jax.numpy as jnp
import numpy as np

LOG_SQRT_2PI = 0.5 * float(np.log(2.0 * np.pi))  # 0.9189385332046727


def gaussian_log_prob(z, axis=-1):
  """log N(z; 0, I) in nats, summed over `axis` (an int or a tuple of axes).

  z: float32 of any shape; returns z's shape without `axis`.
  """
  axes = (axis,) if isinstance(axis, int) else tuple(axis)
  d = int(np.prod([z.shape[a] for a in axes]))
  return -0.5 * jnp.sum(jnp.square(z), axis=axes) - d * LOG_SQRT_2PI


def flow_log_prob(z, logdet, axis=-1):
  """log p(x) in nats = log N(z; 0, I) + log|det J|; logdet broadcastable to the result."""
  return gaussian_log_prob(z, axis) + logdet


def flow_nll(z, logdet):
  """Per-example NLL in nats of a flow's outputs: z (N, ...) summed over all but N, logdet (N,)."""
  return -flow_log_prob(z, logdet, axis=tuple(range(1, z.ndim)))


def fastflow_nll(z, logdet):
  """FastFlow's / MSFlow's loss per example: 0.5 sum z^2 - logdet (the NLL less its constant)."""
  return 0.5 * jnp.sum(jnp.square(z).reshape(z.shape[0], -1), axis=1) - logdet


def location_log_prob(z):
  """(N, H, W): -0.5 mean over channels of z^2, z (N, H, W, C) (the references' map)."""
  return -0.5 * jnp.mean(jnp.square(z), axis=-1)
