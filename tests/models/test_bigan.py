"""Tests of `models.bigan`: the joint D's branches, dropout, and EGBAD's MNIST G and E."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganad_jax.models import bigan
import helpers


@pytest.mark.parametrize("size", [16, 28, 32])
def test_zenati_nets_shapes_and_range(size):
  x = jnp.asarray(helpers.random_images(3, size))[..., :1]
  enc = bigan.ZenatiEncoder(200)
  variables = enc.init(jax.random.key(0), x, train=False)
  z, feats = enc.apply(variables, x, train=False)
  assert z.shape == (3, 200) and z.dtype == jnp.float32
  assert feats["block2"].shape == (3, size // 4, size // 4, 128)
  gen = bigan.ZenatiGenerator(size, 1)
  g_vars = gen.init(jax.random.key(1), z, train=False)
  out = gen.apply(g_vars, z, train=False)
  assert out.shape == (3, size, size, 1) and np.all(np.abs(out) <= 1.0)
  # The reference's layer sizes: dense 200 -> 1024 -> (size/4)^2 * 128, both with biases.
  assert g_vars["params"]["dense1"]["kernel"].shape == (1024, (size // 4) ** 2 * 128)
  d = bigan.JointDiscriminator(x_branch="zenati", negative_slope=0.1)
  logit, d_feats = d.apply(d.init(jax.random.key(2), x, z, train=False), x, z, train=False)
  assert logit.shape == (3,)
  assert d_feats["block1"].shape == (3, -(-size // 4), -(-size // 4), 64)
  assert d_feats["z"].shape == (3, 512) and d_feats["penultimate"].shape == (3, 1024)


def test_tf_batch_norm_defaults():
  bn = bigan.tf_batch_norm(train=True)
  assert (bn.momentum, bn.epsilon) == (0.99, 1e-3)
  variables = bn.init(jax.random.key(0), jnp.ones((2, 5)))
  np.testing.assert_array_equal(variables["params"]["scale"], np.ones(5))


def test_joint_discriminator_dropout_draws_masks_in_train_mode_only():
  x = jnp.asarray(helpers.random_images(4, 16))[..., :1]
  z = jax.random.normal(jax.random.key(0), (4, 8))
  d = bigan.JointDiscriminator(base_features=4, z_features=8, joint_features=8, dropout_rate=0.5)
  variables = d.init(jax.random.key(1), x, z, train=False)

  def train_logits(key):
    return d.apply(variables, x, z, train=True, mutable=["batch_stats"],
                   rngs={"dropout": key})[0][0]

  assert np.any(train_logits(jax.random.key(2)) != train_logits(jax.random.key(3)))
  np.testing.assert_array_equal(train_logits(jax.random.key(2)), train_logits(jax.random.key(2)))
  with pytest.raises(Exception, match="dropout"):
    d.apply(variables, x, z, train=True, mutable=["batch_stats"])
  # Eval mode has no dropout: the rate does not change D's output.
  no_dropout = bigan.JointDiscriminator(base_features=4, z_features=8, joint_features=8)
  np.testing.assert_array_equal(d.apply(variables, x, z, train=False)[0],
                                no_dropout.apply(variables, x, z, train=False)[0])


def test_bigan_rejects_bad_inputs():
  z = jnp.zeros((2, 4))
  with pytest.raises(ValueError, match="x_branch"):
    bigan.JointDiscriminator(x_branch="resnet").init(jax.random.key(0), jnp.zeros((2, 16, 16, 1)),
                                                     z, train=False)
  with pytest.raises(ValueError, match="for images"):
    bigan.JointDiscriminator(x_branch="zenati").init(jax.random.key(0), jnp.zeros((2, 5)), z,
                                                     train=False)
  with pytest.raises(ValueError, match="divisible by 4"):
    bigan.ZenatiEncoder(4).init(jax.random.key(0), jnp.zeros((2, 18, 18, 1)), train=False)
  with pytest.raises(ValueError, match="divisible by 4"):
    bigan.ZenatiGenerator(18, 1).init(jax.random.key(0), z, train=False)
