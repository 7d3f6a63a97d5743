"""MLP networks for tabular vectors (N, F)."""

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp


class MLP(nn.Module):
  """Dense layers with LeakyReLU between them: (N, F) -> (output (N, out_features), features dict).

  Features: "block<i>" (hidden layer i) and "penultimate" (the last hidden
  layer), float of `dtype`; the output is float32.

  Attributes:
    widths: hidden widths, in order.
    out_features: size of the last (linear) layer.
    out_activation: optional final activation (e.g. jnp.tanh for a generator).
    dtype: computation dtype (parameters stay float32).
    return_features: False returns the output alone, as a decoder or generator
      (`dcgan.Decoder`) does; the parameters are the same either way.
  """
  widths: Sequence[int]
  out_features: int
  out_activation: Any = None
  dtype: Any = jnp.float32
  return_features: bool = True

  @nn.compact
  def __call__(self, x, train: bool = True):
    del train  # No BatchNorm: same call signature as the conv nets.
    features = {}
    x = x.astype(self.dtype)
    for i, width in enumerate(self.widths):
      x = nn.leaky_relu(nn.Dense(width, dtype=self.dtype, name=f"dense{i}")(x), 0.2)
      features[f"block{i}"] = x
    features["penultimate"] = x
    x = nn.Dense(self.out_features, dtype=self.dtype, name="dense_out")(x).astype(jnp.float32)
    if self.out_activation is not None:
      x = self.out_activation(x)
    return (x, features) if self.return_features else x
