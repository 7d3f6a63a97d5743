"""Issue 15, faults 8 and 9: refused inputs are one line; ensemble workdirs are first-class.

Fault 8: every experiments/*.py script runs through `cli.run_main`: a refused
input prints `error: <message>` as its last stderr line, no traceback, exit
status 1; a genuine bug keeps its traceback.
Fault 9: `workdir.restore` serves evaluate.py, the Gaussian's workdir features
and `Detector.load` for ensemble workdirs: all members, member k, or a
one-line refusal naming the workdir and its number of members.
"""

import json
import subprocess
import sys

import jax
import numpy as np
import pytest

from ganad_jax import cli
from ganad_jax import configs
from ganad_jax import data
from ganad_jax import ensemble
from ganad_jax import methods
from ganad_jax import train
from ganad_jax import workdir as workdir_lib
from configs import test as test_config
import harness

def _start(args, env):
  return subprocess.Popen([sys.executable, *args], cwd=harness.REPO, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _finish(proc):
  out, err = proc.communicate(timeout=300)
  return proc.returncode, out, err


def _last_line(stderr: str) -> str:
  """The last stderr line that is not an absl log line (I/W/E + date)."""
  lines = [l for l in stderr.splitlines() if l.strip() and not (
      l[:1] in "IWEF" and l[1:5].isdigit())]
  return lines[-1] if lines else ""


# ----------------------------------------------------- fault 8: one line ---


@pytest.fixture(scope="module")
def refused(tmp_path_factory, shared_compilation_cache):
  """(returncode, stdout, stderr) of each bad-input command, run side by side."""
  tmp = tmp_path_factory.mktemp("refused")
  bad_config = tmp / "bad_field.py"
  bad_config.write_text(
      "from configs import test\n\n\ndef get_config():\n"
      "  config = test.get_config()\n  config.train.num_stepz = 3\n  return config\n")
  env = harness.script_env(shared_compilation_cache)
  train_py = ["experiments/train.py", "--config=configs/test.py"]
  cases = {
      "image_size": train_py + ["--config.data.image_size=39", f"--workdir={tmp}/a"],
      "unknown_override": train_py + ["--config.train.num_stepz=3", f"--workdir={tmp}/b"],
      "unknown_field": ["experiments/train.py", f"--config={bad_config}", f"--workdir={tmp}/c"],
      "bad_data_path": train_py + ["--config.data.source=idx", f"--config.data.path={tmp}/none",
                                   f"--workdir={tmp}/d"],
      "evaluate_missing": ["experiments/evaluate.py", f"--workdir={tmp}/nonexistent"],
      "benchmark_bad_size": ["experiments/benchmark.py", "--config=configs/test.py",
                             "--config.data.image_size=39", "--methods=ae", "--classes=0",
                             "--seeds=0", f"--workdir={tmp}/e"],
  }
  procs = {name: _start(args, env) for name, args in cases.items()}
  return {name: _finish(proc) for name, proc in procs.items()}


@pytest.mark.parametrize("case,message", [
    ("image_size", "error: image_size must be a power of two >= 16 (16, 32, 64, 128, 256, ...); "
                   "got 39."),
    ("unknown_override", "error: --config.train.num_stepz: unknown config field 'num_stepz' "
                         "(did you mean 'num_steps'?); ganad_jax/configs/ lists every field."),
    ("unknown_field", "error: Unknown config field 'config.train.num_stepz'; known fields of "
                      "config.train:"),
    ("bad_data_path", "error: Data path for source 'idx' not found:"),
    ("evaluate_missing", "error: "),
    ("benchmark_bad_size", "error: image_size must be a power of two"),
])
def test_refused_input_is_one_line_without_traceback(refused, case, message):
  returncode, _, stderr = refused[case]
  assert returncode == 1, stderr[-3000:]
  assert "Traceback" not in stderr, stderr[-3000:]
  assert _last_line(stderr).startswith(message), stderr[-3000:]
  if case == "evaluate_missing":
    assert "nonexistent/config.json not found" in _last_line(stderr)


def _raised(fn):
  try:
    fn()
  except Exception as e:  # pylint: disable=broad-except
    return e
  raise AssertionError("did not raise")


def test_only_our_own_raises_count_as_input_errors():
  config = test_config.get_config()
  config.train.num_stepz = 3
  assert cli.is_input_error(_raised(lambda: configs.validate(config)))
  assert cli.is_input_error(_raised(lambda: open("/nonexistent/file", encoding="utf-8")))
  # Bugs keep their traceback: errors raised inside numpy / jax, or of other types.
  assert not cli.is_input_error(_raised(lambda: np.concatenate([np.zeros(2), np.zeros((2, 2))])))
  assert not cli.is_input_error(_raised(
      lambda: jax.jit(lambda x: x.reshape(3))(np.zeros(4, np.float32))))
  assert not cli.is_input_error(_raised(lambda: {}["key"]))
  assert not cli.is_input_error(_raised(lambda: int("x")))  # ValueError raised by a builtin.


def test_a_bug_keeps_its_traceback(tmp_path):
  script = tmp_path / "buggy.py"
  script.write_text("import numpy as np\nfrom ganad_jax import cli\n\n\ndef main(argv):\n"
                    "  np.concatenate([np.zeros(2), np.zeros((2, 2))])\n\n\n"
                    "cli.run_main(main)\n")
  proc = subprocess.run([sys.executable, str(script)], cwd=harness.REPO, env=harness.script_env(),
                        capture_output=True, text=True, timeout=120)
  assert proc.returncode == 1
  assert "Traceback" in proc.stderr and "np.concatenate" in proc.stderr
  assert "error: " not in proc.stderr


# ------------------------------------------- fault 9: ensemble workdirs ---


def _ensemble_config():
  config = test_config.get_config()
  config.ensemble.seeds = (0, 1)
  config.ensemble.grid = (("optim.lr", (2e-4, 2e-2)),)
  return config


@pytest.fixture(scope="module")
def ensemble_workdir(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("ensemble") / "run")
  results = train.train_and_evaluate(_ensemble_config(), workdir)
  return workdir, results


def test_evaluate_reports_every_member_and_member_k(ensemble_workdir, tmp_path,
                                                    shared_compilation_cache):
  workdir, results = ensemble_workdir
  env = harness.script_env(shared_compilation_cache)
  procs = [_start(["experiments/evaluate.py", f"--workdir={workdir}", "--nocache",
                   f"--scores_out={tmp_path}/scores.npz"], env),
           _start(["experiments/evaluate.py", f"--workdir={workdir}", "--member=3",
                   "--nocache"], env),
           _start(["experiments/evaluate.py", f"--workdir={workdir}", "--member=4"], env)]
  (rc_all, out_all, err_all), (rc_one, out_one, err_one), (rc_bad, _, err_bad) = map(_finish,
                                                                                   procs)
  assert rc_all == 0, err_all[-3000:]
  evaluated = json.loads(out_all)
  assert [m["member"] for m in evaluated["members"]] == [0, 1, 2, 3]
  for got, want in zip(evaluated["members"], results["members"]):
    assert (got["seed"], got["point"]) == (want["seed"], want["point"])
    np.testing.assert_allclose(got["metrics"]["score"]["auroc"],
                               want["metrics"]["score"]["auroc"], rtol=1e-6)
  assert len(evaluated["table"]) == 2  # One row per grid point.
  with np.load(tmp_path / "scores.npz") as saved:
    assert saved["score"].shape == (4, len(saved["y"]))

  assert rc_one == 0, err_one[-3000:]
  one = json.loads(out_one)
  assert (one["member"], one["seed"], one["point"]) == (3, 1, {"optim.lr": 2e-2})
  np.testing.assert_allclose(one["metrics"]["score"]["auroc"],
                             results["members"][3]["metrics"]["score"]["auroc"], rtol=1e-4)

  assert rc_bad == 1 and "Traceback" not in err_bad
  assert _last_line(err_bad) == (f"error: member=4 is out of range: workdir {workdir!r} holds an "
                                 "ensemble of 4 members (0 <= member < 4).")


def test_restore_all_members_member_k_or_refuse(ensemble_workdir):
  workdir, _ = ensemble_workdir
  every = workdir_lib.restore(workdir, (16, 16, 1))
  assert every.stacked and every.members.size == 4 and every.member is None
  assert jax.tree.leaves(every.state)[0].shape[0] == 4
  two = workdir_lib.restore(workdir, (16, 16, 1), member=2)
  assert not two.stacked and two.member == 2
  assert (two.config.seed, two.config.optim.lr, two.config.ensemble.seeds) == (0, 2e-2, ())
  jax.tree.map(np.testing.assert_array_equal, two.state, ensemble.member_state(every.state, 2))
  with pytest.raises(ValueError, match=(
      rf"^workdir '{workdir}' holds an ensemble of 4 members \(0: seed 0, optim.lr=0.0002; "
      r"1: seed 1, optim.lr=0.0002; 2: seed 0, optim.lr=0.02; and 1 more\); choose one with "
      r"--member=k \(0 <= k < 4\)\.$")):
    workdir_lib.restore(workdir, (16, 16, 1), pick_with="--member=k")


def test_restore_refuses_a_member_of_a_single_run(tmp_path):
  workdir = str(tmp_path / "single")
  train.train_and_evaluate(test_config.get_config(), workdir)
  assert workdir_lib.restore(workdir, (16, 16, 1)).members is None
  with pytest.raises(ValueError, match=f"member=0: workdir '{workdir}' is a single run"):
    workdir_lib.restore(workdir, (16, 16, 1), member=0)


def test_gaussian_workdir_features_of_an_ensemble(ensemble_workdir):
  workdir, _ = ensemble_workdir
  config = test_config.get_config("method=gaussian")
  config.gaussian.features, config.gaussian.workdir = "workdir", workdir
  with pytest.raises(ValueError, match=(
      f"^gaussian.workdir='{workdir}': workdir '{workdir}' holds an ensemble of 4 members .*"
      r"choose one with gaussian.member=k \(0 <= k < 4\)\.$")):
    methods.make(config, (16, 16, 1))
  config.gaussian.member = 3
  method = methods.make(config, (16, 16, 1))
  splits = data.load(config.data, config.seed)
  state = method.init(jax.random.key(0), splits.train.x[:2])
  member = ensemble.member_state(workdir_lib.restore(workdir, (16, 16, 1)).state, 3)
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(state["net"]["params"]),
               member["params"]["encoder"])
  config.gaussian.member = 7
  with pytest.raises(ValueError, match="member=7 is out of range"):
    methods.make(config, (16, 16, 1))
