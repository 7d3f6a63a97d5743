"""Tests of `models.resnet`: shapes, and every stage against torchvision."""

import jax
import jax.numpy as jnp
import pytest

from ganad_jax import pretrained
from ganad_jax.models import resnet
import helpers


@pytest.mark.parametrize("variant,params", [("resnet18", 11_176_512), ("wide_resnet50_2", 66_834_240)])
def test_resnet_shapes(variant, params):
  model = resnet.ResNet(variant)
  variables = pretrained.variable_shapes(model)
  assert sum(v.size for v in jax.tree.leaves(variables["params"])) == params
  out = jax.eval_shape(model.apply, variables, jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32))
  ch = 1 if variant == "resnet18" else 4
  assert {k: v.shape for k, v in out.items()} == {
      "stem": (1, 32, 32, 64), "layer1": (1, 16, 16, 64 * ch), "layer2": (1, 8, 8, 128 * ch),
      "layer3": (1, 4, 4, 256 * ch), "layer4": (1, 2, 2, 512 * ch)}


@pytest.mark.parametrize("variant,size,batch", [("resnet18", 64, 2), ("wide_resnet50_2", 32, 1)])
def test_resnet_random_weights_match_torchvision(variant, size, batch):
  torch = pytest.importorskip("torch", reason="needs torch: pip install 'ganad_jax[torch]'")
  torchvision = pytest.importorskip("torchvision", reason="pip install 'ganad_jax[torch]'")
  torch.manual_seed(0)
  net = helpers.randomise_batch_stats(getattr(torchvision.models, variant)(weights=None))
  model = resnet.ResNet(variant)
  variables = pretrained.convert(model, net.state_dict())
  x = helpers.random_images(batch, size)
  with torch.no_grad():
    h = net.relu(net.bn1(net.conv1(torch.from_numpy(x.transpose(0, 3, 1, 2)))))
    reference = {"stem": h}
    h = net.maxpool(h)
    for k in range(1, 5):
      h = reference[f"layer{k}"] = getattr(net, f"layer{k}")(h)
  helpers.assert_stages_close(model, variables, x, reference)
