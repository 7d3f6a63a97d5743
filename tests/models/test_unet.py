"""Tests of `models.unet`: the U-Net of Skip-GANomaly."""

import functools
import math

import jax
import jax.numpy as jnp
import pytest

from ganad_jax.models import unet

KEY = jax.random.key(0)


@pytest.mark.parametrize("size,channels", [(16, 1), (32, 3)])
def test_unet_goes_down_to_1x1_with_skips(size, channels):
  net = unet.UNet(channels, base_features=4)
  x = jnp.zeros((2, size, size, channels))
  variables = jax.eval_shape(functools.partial(net.init, train=False), KEY, x)
  out, state = jax.eval_shape(functools.partial(
      net.apply, train=False, capture_intermediates=True, mutable=["intermediates"]), variables, x)
  assert out.shape == (2, size, size, channels)
  levels = int(math.log2(size))
  assert unet.num_levels(size) == levels
  inter = state["intermediates"]
  downs = sorted(k for k in variables["params"] if k.startswith("down") and "bn" not in k)
  assert len(downs) == levels
  for i in range(levels):
    side = size // 2**(i + 1)
    assert inter[f"down{i}"]["__call__"][0].shape == (2, side, side, 4 * min(2**i, 8))
  # The up-sampling after level i sees its input concatenated with the skip (2x channels).
  for i in range(1, levels - 1):
    assert variables["params"][f"up{i}"]["kernel"].shape[2] == 2 * 4 * min(2**i, 8)
