"""Tests of experiments/egbad_inversion.py: the curve's JSON and plot, and its refusals."""

import json
import os

import numpy as np

import harness


def test_egbad_inversion_writes_the_curve(tmp_path, shared_compilation_cache):
  env = harness.script_env(shared_compilation_cache)
  out = tmp_path / "curve.json"
  bad = harness.start([  # Refused before any step: it overlaps the curve's run.
      "experiments/egbad_inversion.py", "--config=configs/test.py:method=ae",
      f"--workdir={tmp_path}/w2", f"--json_out={tmp_path}/bad.json",
      f"--plot_out={tmp_path}/bad.png"], env)
  harness.run(harness.script(
      "egbad_inversion.py", "--config=configs/test.py:method=egbad", f"--workdir={tmp_path}/w",
      f"--json_out={out}", f"--plot_out={tmp_path}/curve.png", "--every=2", "--num_images=8",
      "--config.train.num_steps=3"), env, check=True)
  with open(out) as f:
    curve = json.load(f)
  assert curve["steps"] == [0, 2, 3] and curve["total_steps"] == 3
  for weights in ("ema", "live"):
    for name in ("train", "test_normal", "test_anomaly"):
      for k in ("enc", "swap", "random"):
        values = curve[f"{weights}/{name}/{k}"]
        assert len(values) == 3 and np.all(np.isfinite(values)), (weights, name, k)
  # The EMA starts at the initial params: at step 0 both weight sets measure the same.
  assert curve["ema/train/enc"][0] == curve["live/train/enc"][0]
  assert len(curve["test_auroc"]) == 3 and np.isnan(curve["d_loss"][0])
  assert np.isfinite(curve["d_loss"][1])
  assert os.path.getsize(tmp_path / "curve.png") > 0
  assert os.path.exists(tmp_path / "w" / "config.json")
  returncode, _, stderr = harness.finish(bad)
  assert returncode != 0 and "config.method must be 'egbad'" in stderr
