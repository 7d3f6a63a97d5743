"""Weights that cannot lie (issue 26): a checked cache, strict keys, weights in a run's identity.

One module fixture trains PaDiM on a random ResNet-18 file (`benchmark.run_grid`)
and fits a `Detector` on it, damages a copy of the converted-weights cache
(a BatchNorm variance x 100), then rewrites the weight file in place and
starts, in a subprocess, the issue's command again into the trained workdir
(experiments/train.py), which must refuse. While it runs, the tests here fit
a Detector on the damaged cache and call the benchmark's reuse and
`Detector.load`. The keys check and the cache alone (flipped bytes, entries
of an older ganad_jax too) are in tests/test_pretrained.py.
"""

import json
import logging
import shutil

import flax
import numpy as np
import pytest
from safetensors import numpy as safetensors_numpy

from ganad_jax import benchmark
from ganad_jax import detector
from ganad_jax import pretrained
from ganad_jax import workdir as workdir_lib
from ganad_jax.models import resnet
from configs import test as test_config
import harness
import helpers

# Overrides of configs/test.py:method=padim (random ResNet-18 weights leave no level constant).
_OVERRIDES = {"pretrained.backbone": "resnet18", "pretrained.input_size": 32,
              "padim.channels": 16}


def _config(weights, cache):
  config = test_config.get_config("method=padim")
  config.update_from_flattened_dict(dict(_OVERRIDES, **{"pretrained.weights": str(weights),
                                                        "pretrained.cache_dir": str(cache)}))
  return config


def _flags(weights, cache):
  values = dict(_OVERRIDES, **{"pretrained.weights": weights, "pretrained.cache_dir": cache})
  return ["--config=configs/test.py:method=padim",
          *(f"--config.{k}={v}" for k, v in values.items())]


def _detector(weights, cache):
  fields = dict(_OVERRIDES, **{"pretrained.weights": str(weights),
                               "pretrained.cache_dir": str(cache), "eval.batch_size": 8})
  return detector.Detector("padim", **{k.replace(".", "__"): v for k, v in fields.items()})


def _scale_a_variance(entry):
  record = flax.serialization.msgpack_restore(entry.read_bytes())
  bn = record["variables"]["batch_stats"]["layer1_0"]["bn1"]
  bn["var"] = bn["var"] * 100
  entry.write_bytes(flax.serialization.msgpack_serialize(record))


def _resnet34_safetensors(path):
  """A ResNet-34 state dict in torchvision's names, head and step counters included (zeros)."""
  state = {k: np.zeros(shape, np.float32)
           for k, shape in pretrained.torch_names(resnet.ResNet("resnet34")).items()}
  state.update({k.replace("running_var", "num_batches_tracked"): np.zeros((), np.int64)
                for k in list(state) if k.endswith("running_var")})
  state.update({"fc.weight": np.zeros((1000, 512), np.float32),
                "fc.bias": np.zeros(1000, np.float32)})
  safetensors_numpy.save_file(state, str(path))
  return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory, backbone_weights, shared_compilation_cache):
  tmp = tmp_path_factory.mktemp("weights_runs")
  weights = shutil.copy(backbone_weights["resnet18"], tmp / "r18.safetensors")
  mine = shutil.copy(weights, tmp / "my.safetensors")  # Rewritten in place below.
  cache = tmp / "cache"
  root = str(tmp / "bench")
  benchmark.run_grid(_config(mine, cache), ["padim"], None, [0], root)
  images = np.random.default_rng(0).uniform(size=(24, 16, 16)).astype(np.float32)
  clean = _detector(mine, cache).fit(images)
  clean.save(str(tmp / "detector"))

  # The same content as `mine`: the same cache entry.
  entry = pretrained.cache_path(resnet.ResNet("resnet18"), weights, cache)
  shutil.copytree(cache, tmp / "cache_scaled")
  damaged = tmp / "cache_scaled" / entry.relative_to(cache)
  _scale_a_variance(damaged)

  old_sha = pretrained.sha256(mine)
  state = safetensors_numpy.load_file(str(mine))
  state["conv1.weight"] = -state["conv1.weight"]  # Other kernels, the same keys and shapes.
  safetensors_numpy.save_file(state, str(mine))
  workdir = benchmark.run_dir(root, "padim", "all", 0)
  before = helpers.snapshot(root)
  resume = harness.start([*harness.script("train.py", *_flags(mine, cache),
                                          f"--workdir={workdir}")[1:]],
                         harness.script_env(shared_compilation_cache))
  yield {"tmp": tmp, "weights": weights, "mine": mine, "cache": cache, "old_sha": old_sha,
         "new_sha": pretrained.sha256(mine), "root": root, "workdir": workdir,
         "before": before, "images": images, "clean_scores": clean.score_samples(images),
         "damaged": damaged, "resume": resume,
         "recorded": helpers.read_results(workdir)["weights"]}
  if resume.poll() is None:
    resume.kill()
  resume.communicate()


def test_damaged_cache_entry_is_converted_again_with_the_clean_scores(runs, caplog):
  with caplog.at_level(logging.WARNING):
    scores = _detector(runs["weights"], runs["damaged"].parents[1]).fit(
        runs["images"]).score_samples(runs["images"])
  np.testing.assert_array_equal(scores, runs["clean_scores"])  # Same process: bit for bit.
  warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
  assert (f"Converted-weights cache entry {runs['damaged']} is corrupt (its variables do not "
          f"match the SHA-256 recorded with them); converting {runs['weights']} again."
          ) in warnings, warnings
  # A user's file without pretrained.normalization: the default, said in the log.
  assert (f"pretrained.normalization is unset for {runs['weights']}: using 'imagenet', the "
          "default for resnet18 weights; set it if they expect another (e.g. 'inception' for "
          "AdvProp).") in warnings


def test_weights_and_normalisation_are_recorded(runs):
  assert runs["recorded"] == {
      "backbone": "resnet18", "file": str(runs["mine"]), "sha256": runs["old_sha"],
      "normalization": {"name": "imagenet", "mean": [0.485, 0.456, 0.406],
                        "std": [0.229, 0.224, 0.225]}}


def test_resnet34_state_dict_into_resnet18_is_refused(runs):
  path = _resnet34_safetensors(runs["tmp"] / "resnet34.safetensors")
  with pytest.raises(pretrained.WeightsError) as info:
    _detector(path, runs["cache"]).fit(runs["images"])
  # 8 more BasicBlocks of 10 keys; safetensors stores the keys sorted.
  assert str(info.value) == (
      f"{path}: 80 keys that resnet18 does not read, the first 'layer1.2.bn1.bias' (weights of "
      "another or a larger model?); only the classifier head and num_batches_tracked are dropped")


def _digests(runs):
  return (f"pretrained weights {runs['mine']} of SHA-256 {runs['old_sha']}; this run's "
          f"{runs['mine']} has SHA-256 {runs['new_sha']}")


def test_rewritten_weight_file_refuses_reuse_and_load(runs):
  assert runs["old_sha"] != runs["new_sha"]
  with pytest.raises(workdir_lib.IncompatibleResultsError) as info:
    benchmark.run_grid(_config(runs["mine"], runs["cache"]), ["padim"], None, [0], runs["root"])
  assert str(info.value) == (
      f"{runs['workdir']}/results.json was computed with {_digests(runs)}. Use another "
      f"--workdir, or delete {runs['workdir']} to run it again (or pass --overwrite).")
  with pytest.raises(ValueError) as info:
    detector.Detector.load(str(runs["tmp"] / "detector"))
  assert str(info.value) == (
      f"Checkpoint {runs['tmp']}/detector/checkpoints/0 was computed with {_digests(runs)}. "
      "Use a fresh --workdir, or the weights that wrote it.")


def test_rewritten_weight_file_refuses_the_same_command(runs):
  """The issue's repro: the same train.py command into the same workdir is refused."""
  returncode, _, stderr = harness.finish(runs["resume"])
  assert returncode == 1 and "Traceback" not in stderr, stderr[-3000:]
  assert harness.last_line(stderr) == (
      f"error: Checkpoint {runs['workdir']}/checkpoints/0 was computed with {_digests(runs)}. "
      "Use a fresh --workdir, or the weights that wrote it.")
  assert helpers.snapshot(runs["root"]) == runs["before"]  # Nothing overwritten.
  assert json.loads(runs["before"]["padim/all/seed0/results.json"])["weights"]["sha256"] == (
      runs["old_sha"])
