"""Tests of `models.patch`: the PatchGAN discriminator."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganad_jax.models import patch
import helpers

KEY = jax.random.key(0)


@pytest.mark.parametrize("size,layers,patches", [(16, 2, 4), (32, 2, 36), (32, 3, 4),
                                                 (64, 3, 36)])
def test_patch_discriminator_logit_count(size, layers, patches):
  d = patch.PatchDiscriminator(base_features=4, num_layers=layers)
  x = jnp.zeros((3, size, size, 1))
  variables = jax.eval_shape(functools.partial(d.init, train=False), KEY, x)
  logits, feats = jax.eval_shape(functools.partial(d.apply, train=False), variables, x)
  assert patch.num_patches(size, layers) == patches
  assert logits.shape == (3, patches)
  side = size // 2**layers - 1
  assert feats["penultimate"].shape == (3, side, side, 4 * min(2**layers, 8))


def test_patch_logits_see_only_their_patch():
  # 32x32, 1 stride-2 layer: 14x14 logits with a 16x16 receptive field.
  d = patch.PatchDiscriminator(base_features=2, num_layers=1)
  x = jnp.repeat(helpers.gan_batch((32, 32, 1), n=1), 2, axis=0)
  variables = jax.jit(functools.partial(d.init, train=False))(KEY, x)
  apply = jax.jit(functools.partial(d.apply, train=False))
  logits, _ = apply(variables, x.at[1, :2, :2, 0].add(1.0))
  same, moved = (np.asarray(row, np.float64).reshape(14, 14) for row in logits)
  # Two rows of one batch need not agree bit for bit (XLA:CPU may sum one
  # row's products in another order; the far corner differed in its last bits
  # on some CPUs). "Unchanged" is within 1e-3 of the largest logit (~1e-6
  # here): thousands of float32 ulps of it, while a dot product over the
  # 16x16 receptive field rounds by at most a few hundred; the corner patch
  # moves ~80x more than that.
  atol = 1e-3 * np.abs(same).max()
  assert abs(moved[0, 0] - same[0, 0]) > 10 * atol
  np.testing.assert_allclose(moved[8:, :], same[8:, :], rtol=0, atol=atol)
  np.testing.assert_allclose(moved[:, 8:], same[:, 8:], rtol=0, atol=atol)
