"""Weights that cannot lie (issue 26): a checked cache, strict keys, weights in a run's identity.

One module fixture trains PaDiM on a random ResNet-18 file once (in this
process, through `benchmark.run_grid`) and fits a `Detector` on it, then
scales a BatchNorm variance in the converted-weights cache and rewrites the
weight file in place. Two commands of the issue run side by side in
subprocesses (experiments/train.py: the run on the damaged cache, and the
same command again into the trained workdir); the benchmark's reuse and
`Detector.load` are called in this process. (Bit flips in the cache and the
keys check alone are in tests/test_pretrained.py.)
"""

import json
import os
import shutil

import flax
import numpy as np
import pytest
from safetensors import numpy as safetensors_numpy

from ganad_jax import benchmark
from ganad_jax import detector
from ganad_jax import pretrained
from ganad_jax import train
from ganad_jax import workdir as workdir_lib
from ganad_jax.methods import backbone
from configs import test as test_config
import harness
import helpers

# Overrides of configs/test.py:method=padim (random ResNet-18 weights leave no level constant).
_OVERRIDES = {"pretrained.backbone": "resnet18", "pretrained.input_size": 32,
              "padim.channels": 16}
# AUROCs of the same program in two processes: equal up to float32 summation order.
_AUROC_TOL = 1e-6


def _config(weights, cache):
  config = test_config.get_config("method=padim")
  config.update_from_flattened_dict(dict(_OVERRIDES, **{"pretrained.weights": str(weights),
                                                        "pretrained.cache_dir": str(cache)}))
  return config


def _flags(weights, cache):
  values = dict(_OVERRIDES, **{"pretrained.weights": weights, "pretrained.cache_dir": cache})
  return ["--config=configs/test.py:method=padim",
          *(f"--config.{k}={v}" for k, v in values.items())]


def _scale_a_variance(entry):
  record = flax.serialization.msgpack_restore(entry.read_bytes())
  bn = record["variables"]["batch_stats"]["layer1_0"]["bn1"]
  bn["var"] = bn["var"] * 100
  entry.write_bytes(flax.serialization.msgpack_serialize(record))


def _resnet34_pth(path):
  """A torchvision ResNet-34 state dict, in its key order (zeros: the refusal reads only keys)."""
  torch = pytest.importorskip("torch", reason="needs torch: pip install '.[torch]'")
  torchvision = pytest.importorskip("torchvision")
  with torch.device("meta"):
    keys = torchvision.models.resnet34(weights=None).state_dict()
  torch.save({k: torch.zeros(v.shape, dtype=v.dtype) for k, v in keys.items()}, str(path))
  return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory, backbone_weights, shared_compilation_cache):
  tmp = tmp_path_factory.mktemp("weights_runs")
  weights = shutil.copy(backbone_weights["resnet18"], tmp / "r18.safetensors")
  mine = shutil.copy(weights, tmp / "my.safetensors")  # Rewritten in place below.
  cache = tmp / "cache"
  root = str(tmp / "bench")
  rows = benchmark.run_grid(_config(mine, cache), ["padim"], None, [0], root)
  images = np.random.default_rng(0).uniform(size=(24, 16, 16)).astype(np.float32)
  saved = str(tmp / "detector")
  detector.Detector("padim", **{k.replace(".", "__"): v for k, v in dict(
      _OVERRIDES, **{"pretrained.weights": str(mine), "pretrained.cache_dir": str(cache),
                     "eval.batch_size": 8}).items()}).fit(images).save(saved)

  entry = pretrained.cache_path(backbone._module("resnet18"), weights, cache)  # pylint: disable=protected-access
  shutil.copytree(cache, tmp / "cache_scaled")
  damaged = tmp / "cache_scaled" / entry.relative_to(cache)
  _scale_a_variance(damaged)

  old_sha = pretrained.sha256(mine)
  state = safetensors_numpy.load_file(str(mine))
  state["conv1.weight"] = -state["conv1.weight"]  # Other kernels, the same keys and shapes.
  safetensors_numpy.save_file(state, str(mine))
  workdir = benchmark.run_dir(root, "padim", "all", 0)
  before = helpers.snapshot(root)

  env = harness.script_env(shared_compilation_cache)
  train_py = lambda w, c, out: ["experiments/train.py", *_flags(w, c), f"--workdir={out}"]
  commands = {
      "resume": train_py(mine, cache, workdir),
      "scaled": train_py(weights, tmp / "cache_scaled", tmp / "scaled"),
  }
  procs = {name: harness.start(args, env) for name, args in commands.items()}
  done = {name: harness.finish(proc) for name, proc in procs.items()}
  return {"tmp": tmp, "weights": weights, "mine": mine, "cache": cache, "old_sha": old_sha,
          "new_sha": pretrained.sha256(mine), "auroc": rows[0]["metrics"]["auroc"],
          "root": root, "before": before, "workdir": workdir, "damaged": damaged,
          "detector": saved, "done": done}


def _refused(runs, name):
  returncode, _, stderr = runs["done"][name]
  assert returncode == 1, stderr[-3000:]
  assert "Traceback" not in stderr, stderr[-3000:]
  return harness.last_line(stderr)


def test_damaged_cache_entry_is_converted_again_with_the_clean_score(runs):
  returncode, _, stderr = runs["done"]["scaled"]
  assert returncode == 0, stderr[-3000:]
  assert f"Converted-weights cache entry {runs['damaged']} is corrupt" in stderr, stderr[-3000:]
  assert f"converting {runs['weights']} again." in stderr
  results = helpers.read_results(runs["tmp"] / "scaled")
  assert abs(results["metrics"]["score"]["auroc"] - runs["auroc"]) <= _AUROC_TOL
  # The weights and their normalisation are recorded; an unstated one is said in the log.
  assert results["weights"] == {
      "backbone": "resnet18", "file": str(runs["weights"]),
      "sha256": pretrained.sha256(runs["weights"]),
      "normalization": {"name": "imagenet", "mean": [0.485, 0.456, 0.406],
                        "std": [0.229, 0.224, 0.225]}}
  assert (f"pretrained.normalization is unset for {runs['weights']}: using 'imagenet', the "
          "default for resnet18 weights") in stderr


def test_resnet34_state_dict_into_resnet18_is_refused(runs):
  path = _resnet34_pth(runs["tmp"] / "resnet34.pth")
  workdir = runs["tmp"] / "r34"
  with pytest.raises(pretrained.WeightsError) as info:
    train.train_and_evaluate(_config(path, runs["cache"]), str(workdir))
  assert str(info.value) == (
      f"{path}: 80 keys that resnet18 does not read, the first 'layer1.2.conv1.weight' "
      "(weights of another or a larger model?); only the classifier head and "
      "num_batches_tracked are dropped")
  assert not os.path.exists(workdir / "config.json")


def _digests(runs):
  return (f"pretrained weights {runs['mine']} of SHA-256 {runs['old_sha']}; this run's "
          f"{runs['mine']} has SHA-256 {runs['new_sha']}")


def test_rewritten_weight_file_refuses_resume_reuse_and_load(runs):
  assert runs["old_sha"] != runs["new_sha"]
  returncode, _, stderr = runs["done"]["resume"]
  assert returncode == 1 and "Traceback" not in stderr, stderr[-3000:]
  assert harness.last_line(stderr) == (
      f"error: Checkpoint {runs['workdir']}/checkpoints/0 was computed with {_digests(runs)}. "
      "Use a fresh --workdir, or the weights that wrote it.")
  with pytest.raises(workdir_lib.IncompatibleResultsError) as info:
    benchmark.run_grid(_config(runs["mine"], runs["cache"]), ["padim"], None, [0], runs["root"])
  assert str(info.value) == (
      f"{runs['workdir']}/results.json was computed with {_digests(runs)}. Use another "
      f"--workdir, or delete {runs['workdir']} to run it again (or pass --overwrite).")
  assert helpers.snapshot(runs["root"]) == runs["before"]  # Nothing overwritten.
  assert json.loads(runs["before"]["padim/all/seed0/results.json"])["weights"]["sha256"] == (
      runs["old_sha"])
  with pytest.raises(ValueError) as info:
    detector.Detector.load(runs["detector"])
  assert str(info.value).startswith(f"Checkpoint {runs['detector']}/checkpoints/0 was computed "
                                    f"with {_digests(runs)}.")
