"""Tests of `cli.run_main`: a refused input is one line, no traceback; a bug keeps its traceback."""

import os
import subprocess
import sys

import jax
from ml_collections.config_flags import config_flags
import numpy as np
import pytest

from ganad_jax import cli
from ganad_jax import configs
from configs import test as test_config
import harness


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
      "missing_config": ["experiments/train.py", "--config=configs/no_such_config.py",
                         f"--workdir={tmp}/f"],
      "benchmark_bad_size": ["experiments/benchmark.py", "--config=configs/test.py",
                             "--config.data.image_size=39", "--methods=ae", "--classes=0",
                             "--seeds=0", f"--workdir={tmp}/e"],
      "padim_eps": ["experiments/train.py", "--config=configs/test.py:method=padim",
                    "--config.padim.eps=0", f"--workdir={tmp}/g"],
      "other_method_override": train_py + ["--config.padim.eps=0.1", f"--workdir={tmp}/h"],
  }
  procs = {name: harness.start(args, env) for name, args in cases.items()}
  return {"tmp": tmp, **{name: harness.finish(proc) for name, proc in procs.items()}}


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
    ("missing_config", "error: --config=configs/no_such_config.py: config file not found (a "
                       "relative path is taken from the working directory, "),
    ("padim_eps", "error: padim.eps=0.0 must be > 0: it is added to the covariance's diagonal"),
    ("other_method_override", "error: --config.padim.eps: unknown config field 'padim': 'padim' "
                              "is a section of method padim, and a config holds its own "
                              "method's sections only; choose the method where the config is "
                              "built (e.g. --config=configs/test.py:method=padim)"),
])
def test_refused_input_is_one_line_without_traceback(refused, case, message):
  returncode, _, stderr = refused[case]
  assert returncode == 1, stderr[-3000:]
  assert "Traceback" not in stderr, stderr[-3000:]
  assert harness.last_line(stderr).startswith(message), stderr[-3000:]
  if case == "evaluate_missing":
    assert "nonexistent/config.json not found" in harness.last_line(stderr)
  if case == "missing_config":  # Refused at flag parsing, before the workdir is made.
    assert not (refused["tmp"] / "f").exists()
    assert stderr.count("error: ") == 1, stderr[-3000:]
  if case in ("padim_eps", "other_method_override"):  # Refused before the workdir is made.
    assert not (refused["tmp"] / {"padim_eps": "g", "other_method_override": "h"}[case]).exists()
    assert stderr.count("error: ") == 1, stderr[-3000:]


_CONFIG_FILES = {  # File name -> (its source, the start of the message after "--config=<path>: ").
    "syntax.py": ("def get_config(:\n  pass\n", "syntax error in {path} line 1: invalid syntax."),
    "raises.py": ("def get_config(arg=None):\n  del arg\n  raise RuntimeError('boom')\n",
                  "the config file raised RuntimeError: boom ({path} line 3, in get_config)."),
    "imports.py": ("import no_such_module_xyz\n",
                   "the config file raised ModuleNotFoundError: No module named "
                   "'no_such_module_xyz' ({path} line 1, in <module>)."),
    "no_get_config.py": ("x = 1\n", "the config file defines no get_config(arg=None)."),
    "calls_numpy.py": ("import numpy as np\n\n\ndef get_config(arg=None):\n  del arg\n"
                       "  return np.array([1, 2]).reshape(3)\n",
                       "the config file raised ValueError: cannot reshape array of size 2 into "
                       "shape (3,) ({path} line 6, in get_config)."),
    "other_method.py": ("from configs import test\n\n\ndef get_config(arg=None):\n"
                        "  config = test.get_config(arg)\n  config.padim.eps = 0.1\n"
                        "  return config\n",
                        "the config file raised AttributeError: \"'padim'\" ({path} line 6, in "
                        "get_config); 'padim' is a section of method padim, and a config holds "
                        "its own method's sections only; choose the method where the config is "
                        "built (e.g. --config=configs/test.py:method=padim)."),
    "bad_arg.py": ("from ganad_jax import configs\n\n\ndef get_config(arg=None):\n"
                   "  return configs.parse_arg(arg, digit=0)\n",
                   "Config argument 'digt=3' (in 'digt=3') is not key=value with a known key; "
                   "keys taken (with defaults): digit=0."),
}


@pytest.mark.parametrize("name", sorted(_CONFIG_FILES) + ["missing.py"])
def test_a_config_file_that_fails_to_load_is_one_line_naming_it(tmp_path, monkeypatch, name):
  # ml_collections loads every config file as the module "config_config", into the loaded one.
  monkeypatch.delitem(sys.modules, "config_config", raising=False)
  source, expected = _CONFIG_FILES.get(name, (None, "config file not found"))
  path = tmp_path / name
  if source is not None:
    path.write_text(source)
  arg = f"{path}:digt=3" if name == "bad_arg.py" else str(path)
  parser = config_flags.ConfigFileFlagParser("config")
  # ml_collections raises most errors from parse(), and a missing file's only when it is read.
  error = _raised(lambda: parser.parse(arg).keys())
  assert cli.config_file_error(error) == (f"--config={arg}: " + expected.format(path=path)
                                          + (" (a relative path is taken from the working "
                                             f"directory, {os.getcwd()})."
                                             if name == "missing.py" else ""))


def test_a_bug_of_ours_that_a_config_file_meets_keeps_its_traceback(tmp_path, monkeypatch):
  monkeypatch.delitem(sys.modules, "config_config", raising=False)
  path = tmp_path / "list_default.py"  # parse_arg raises TypeError: a misuse, not a refusal.
  path.write_text("from ganad_jax import configs\n\n\ndef get_config(arg=None):\n"
                  "  return configs.parse_arg(arg, widths=[1])\n")
  parser = config_flags.ConfigFileFlagParser("config")
  assert cli.config_file_error(_raised(lambda: parser.parse(f"{path}:widths=2"))) is None
  assert cli.config_file_error(_raised(lambda: {}["key"])) is None  # Not from a config file.


def _raised(fn):
  try:
    fn()
  except Exception as e:  # pylint: disable=broad-except
    return e
  raise AssertionError("did not raise")


def test_a_method_set_without_its_sections_is_an_input_error():
  config = test_config.get_config("method=ae")
  config.method = "vae"  # What --config.method=vae does: no `vae` section.
  assert cli.is_input_error(_raised(lambda: configs.validate(config)))


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
