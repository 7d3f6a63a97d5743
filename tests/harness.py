"""Running experiments/*.py in subprocesses, and the SIGKILL of the kill-and-resume tests.

`run` runs a command to its end; `start` / `finish` run several side by side;
`last_line` is the line a refused input ends stderr with. `kill_when` starts a
command, polls a condition (what is on disk) and kills the process with SIGKILL
the moment the condition holds: the one way every kill-and-resume test
interrupts a run.
"""

import os
import signal
import subprocess
import sys
import time
from typing import Any, Callable, Mapping, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def script_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
  """This process's environment, with the repo on PYTHONPATH and `extra` (e.g. the cache's)."""
  return dict(os.environ, PYTHONPATH=REPO, **(extra or {}))


def script(name: str, *args: str) -> list[str]:
  """The command line of `experiments/<name>` under this interpreter, run from REPO."""
  return [sys.executable, os.path.join("experiments", name), *args]


def run(command: Sequence[str], env: Mapping[str, str],
        check: bool = False) -> subprocess.CompletedProcess:
  """Runs `command` (cwd REPO) to the end; stdout and stderr captured as text.

  Raises:
    subprocess.CalledProcessError: `check` and a non-zero exit status.
  """
  return subprocess.run(list(command), cwd=REPO, env=dict(env), capture_output=True, text=True,
                        check=check)


def start(args: Sequence[str], env: Mapping[str, str]) -> subprocess.Popen:
  """Starts `python args...` (cwd REPO), stdout and stderr piped as text; see `finish`."""
  return subprocess.Popen([sys.executable, *args], cwd=REPO, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
  """(returncode, stdout, stderr) of a `start`ed process, waited for up to 300 s."""
  out, err = proc.communicate(timeout=300)
  return proc.returncode, out, err


def last_line(stderr: str) -> str:
  """The last stderr line that is not an absl log line (I/W/E + date)."""
  lines = [l for l in stderr.splitlines() if l.strip() and not (
      l[:1] in "IWEF" and l[1:5].isdigit())]
  return lines[-1] if lines else ""


def kill_when(command: Sequence[str], env: Mapping[str, str], log_path: os.PathLike,
              condition: Callable[[], Any], timeout_s: float = 120,
              poll_s: float = 0.002) -> Any:
  """Runs `command` (cwd REPO) and SIGKILLs it as soon as `condition()` is truthy.

  Args:
    command: argv of the process.
    env: its environment (`script_env`).
    log_path: file that receives its stdout and stderr (a file, not a pipe: a
      full pipe would stall the process before the moment to kill).
    condition: polled every `poll_s` seconds while the process runs; its first
      truthy value is what was seen at the kill.
    timeout_s: how long to wait for the condition.

  Returns:
    The truthy value `condition()` returned.

  Raises:
    AssertionError: the process ended, or `timeout_s` passed, before the
      condition held (the message has the log's tail), or the process did not
      die of the SIGKILL. The process is killed and reaped in every case.
  """
  seen = None
  with open(log_path, "w", encoding="utf-8") as log:
    proc = subprocess.Popen(list(command), cwd=REPO, env=dict(env), stdout=log,
                            stderr=subprocess.STDOUT)
    try:
      deadline = time.monotonic() + timeout_s
      while time.monotonic() < deadline and proc.poll() is None:
        seen = condition()
        if seen:
          os.kill(proc.pid, signal.SIGKILL)
          break
        time.sleep(poll_s)
    finally:
      if proc.poll() is None and not seen:
        proc.kill()
      proc.wait()
  with open(log_path, encoding="utf-8") as log:
    tail = log.read()[-3000:]
  assert seen, (f"{' '.join(command)} ended (status {proc.returncode}) or ran past {timeout_s} s "
                f"before it could be killed:\n{tail}")
  assert proc.returncode == -signal.SIGKILL, (proc.returncode, tail)
  return seen


def checkpoint_in_flight(ckpt_dir: str, after_step: int) -> str | None:
  """Name of the Orbax checkpoint being written in `ckpt_dir` once step `after_step` is saved.

  For `kill_when`: kills mid-save, after the checkpoint of `after_step` (or a
  later one) is final. None until then.
  """
  names = os.listdir(ckpt_dir) if os.path.isdir(ckpt_dir) else []
  done = [int(n) for n in names if n.isdigit()]
  pending = [n for n in names if "orbax-checkpoint-tmp" in n]
  return pending[0] if pending and done and max(done) >= after_step else None
