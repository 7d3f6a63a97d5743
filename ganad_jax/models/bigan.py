"""The BiGAN / EGBAD joint discriminator D(x, z) (Donahue et al. 2017; Zenati et al. 2018).

Shapes follow EGBAD's MNIST discriminator with DCGAN convolutions: the x branch
is the DCGAN discriminator's conv stack (k4 s2 convs, BatchNorm from the second
on, LeakyReLU 0.2) down to 4x4, flattened; for vectors it is dense layers. The
z branch is one dense layer; the concatenated branches go through one joint
dense layer ("penultimate", the layer of EGBAD's feature-matching score) to one
logit. EGBAD's dropout in D is left out (as in our other discriminators).
"""

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from ganad_jax.models import dcgan


class JointDiscriminator(nn.Module):
  """D(x, z): images (N, H, W, C) or vectors (N, F), latents (N, nz) -> (logit (N,), features).

  Features: "block<i>" (the x branch's layers, named as in
  `dcgan.Discriminator`), "z" (the z branch) and "penultimate" (the joint layer).

  Attributes:
    base_features: channels of the first conv of the image x branch; doubled per halving.
    x_widths: hidden widths of the vector x branch.
    z_features: width of the z branch.
    joint_features: width of the joint layer.
    dtype: computation dtype (parameters stay float32).
  """
  base_features: int = 64
  x_widths: Sequence[int] = (64, 32)
  z_features: int = 512
  joint_features: int = 1024
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, z, train: bool = True):
    features = {}
    h = x.astype(self.dtype)
    if x.ndim == 4:
      for i in range(dcgan.num_halvings(x.shape[1])):
        h = nn.Conv(self.base_features * 2**i, (4, 4), strides=(2, 2),
                    padding=((1, 1), (1, 1)), use_bias=False, kernel_init=dcgan.conv_init,
                    dtype=self.dtype, name=f"conv{i}")(h)
        if i > 0:
          h = dcgan.batch_norm(train, f"bn{i}")(h)
        h = nn.leaky_relu(h, 0.2)
        features[f"block{i}"] = h
    elif x.ndim == 2:
      for i, width in enumerate(self.x_widths):
        h = nn.leaky_relu(self._dense(width, f"x_dense{i}")(h), 0.2)
        features[f"block{i}"] = h
    else:
      raise ValueError(f"JointDiscriminator takes images (N, H, W, C) or vectors (N, F); "
                       f"got x of shape {x.shape}.")
    h = h.reshape(h.shape[0], -1)
    hz = nn.leaky_relu(self._dense(self.z_features, "z_dense")(z.astype(self.dtype)), 0.2)
    features["z"] = hz
    h = jnp.concatenate([h, hz], axis=-1)
    h = nn.leaky_relu(self._dense(self.joint_features, "joint_dense")(h), 0.2)
    features["penultimate"] = h
    logit = self._dense(1, "dense_out")(h)
    return logit[:, 0].astype(jnp.float32), features

  def _dense(self, features: int, name: str) -> nn.Dense:
    return nn.Dense(features, kernel_init=dcgan.conv_init, dtype=self.dtype, name=name)
