"""Tests that run experiments/*.py end to end: train, evaluate, an ensemble's members."""

import json
import os

import numpy as np

import harness


def test_scripts_train_then_evaluate(tmp_path, shared_compilation_cache):
  workdir = str(tmp_path / "run")
  env = harness.script_env(shared_compilation_cache)
  # train.py's refusal of a misspelt field: tests/test_cli.py ("unknown_override").
  harness.run(harness.script("train.py", "--config=configs/test.py:method=ssim_ae",
                             f"--workdir={workdir}", "--config.train.num_steps=2"), env, check=True)
  harness.run(harness.script("evaluate.py", f"--workdir={workdir}", "--split=test",
                             f"--json_out={tmp_path}/eval.json"), env, check=True)
  with open(tmp_path / "eval.json") as f:
    evaluated = json.load(f)
  with open(os.path.join(workdir, "results.json")) as f:
    trained = json.load(f)
  assert evaluated["checkpoint_step"] == 2
  assert evaluated["metrics"] == trained["metrics"]


def test_evaluate_reports_every_member_and_member_k(ensemble_workdir, tmp_path,
                                                    shared_compilation_cache):
  workdir, results = ensemble_workdir
  env = harness.script_env(shared_compilation_cache)
  procs = [harness.start(["experiments/evaluate.py", f"--workdir={workdir}", "--nocache",
                          f"--scores_out={tmp_path}/scores.npz"], env),
           harness.start(["experiments/evaluate.py", f"--workdir={workdir}", "--member=3",
                          "--nocache"], env),
           harness.start(["experiments/evaluate.py", f"--workdir={workdir}", "--member=4"], env)]
  (rc_all, out_all, err_all), (rc_one, out_one, err_one), (rc_bad, _, err_bad) = map(harness.finish,
                                                                                   procs)
  assert rc_all == 0, err_all[-3000:]
  evaluated = json.loads(out_all)
  assert [m["member"] for m in evaluated["members"]] == [0, 1, 2, 3]
  for got, want in zip(evaluated["members"], results["members"]):
    assert (got["seed"], got["point"]) == (want["seed"], want["point"])
    np.testing.assert_allclose(got["metrics"]["score"]["auroc"],
                               want["metrics"]["score"]["auroc"], rtol=1e-6)
  assert len(evaluated["table"]) == 2  # One row per grid point.
  # One result builder (run_report.member_results); results.json's form (tuples as lists).
  assert evaluated["ensemble"] == json.loads(json.dumps(results["ensemble"]))
  with np.load(tmp_path / "scores.npz") as saved:
    assert saved["score"].shape == (4, len(saved["y"]))

  assert rc_one == 0, err_one[-3000:]
  one = json.loads(out_one)
  assert (one["member"], one["seed"], one["point"]) == (3, 1, {"optim.lr": 2e-2})
  np.testing.assert_allclose(one["metrics"]["score"]["auroc"],
                             results["members"][3]["metrics"]["score"]["auroc"], rtol=1e-4)

  assert rc_bad == 1 and "Traceback" not in err_bad
  assert harness.last_line(err_bad) == (
      f"error: member=4 is out of range: workdir {workdir!r} holds an "
      "ensemble of 4 members (0 <= member < 4).")
