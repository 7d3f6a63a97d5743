"""Per-sample losses and anomaly maps shared by the methods (pure jnp)."""

import dm_pix
import jax.numpy as jnp
import optax


def per_sample_mean(x):
  """Mean over every axis but the first: (N, ...) -> (N,)."""
  return x.reshape(x.shape[0], -1).mean(axis=1)


def squared_error_map(x, y):
  """Per-pixel squared residual averaged over channels: (N, H, W, C) -> (N, H, W)."""
  return jnp.mean(jnp.square(x - y), axis=-1)


def ssim_map(x, y, window: int = 11, sigma: float = 1.5):
  """Per-pixel SSIM of images in [-1, 1], averaged over channels, same size as the input.

  dm-pix computes SSIM over 'valid' windows; reflecting the border by half a
  window first gives one value per input pixel, so 1 - map is an anomaly map.
  """
  half = window // 2
  pad = ((0, 0), (half, half), (half, half), (0, 0))
  x, y = jnp.pad(x, pad, mode="reflect"), jnp.pad(y, pad, mode="reflect")
  values = dm_pix.ssim(x, y, max_val=2.0, filter_size=window, filter_sigma=sigma,
                       return_map=True)
  return values.mean(axis=-1)


def bce_with_logits(logits, target: float):
  """Mean binary cross-entropy of `logits` against a constant target (0 or 1)."""
  return optax.sigmoid_binary_cross_entropy(logits, jnp.full_like(logits, target)).mean()
