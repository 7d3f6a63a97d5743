"""`run_main(main)`: how every experiments/*.py script runs, refusing bad input in one line.

A refused input (a bad config value, a missing workdir or data path, an
incompatible checkpoint, a diverged run) is printed as ONE line on stderr,
`error: <message>`, and the script exits with status 1. Anything else is a bug
and keeps its full traceback.

What counts as a refused input (`is_input_error`):

- an exception of the types in `INPUT_ERRORS` raised by a `raise` statement
  in ganad_jax's own code (the package or an experiments/ script), i.e. the
  innermost frame of its traceback is ours and was executing RAISE_VARARGS /
  RERAISE. That covers the library's checks, which all raise these types
  with a message naming the field, file or value: ValueError (config
  validation, data and protocol errors, metrics errors, ensemble plans,
  `checkpoints.IncompatibleCheckpointError`), FloatingPointError
  (`divergence.DivergenceError`, non-finite scores), FileNotFoundError /
  PermissionError (missing workdirs, checkpoints, data). A ValueError raised
  inside numpy, jax or flax (a shape bug) has its innermost frame there, or
  a ganad_jax frame that was calling into them, so it keeps its traceback;
  so do TypeError, KeyError, AttributeError and the rest, wherever raised.
- an OSError about a path (`FileNotFoundError`, `NotADirectoryError`,
  `IsADirectoryError`, `PermissionError`) with its `filename` set, wherever
  raised: the operating system's message names the path.
- an unknown `--config.<field>` override, which ml_collections reports as a
  KeyError / AttributeError while the flags are parsed.
- a config file that cannot be loaded (`config_file_error`): missing, a syntax
  error, or an exception raised by the file's own code (its module body or
  `get_config`). ml_collections defers a missing file until the config is
  first read and wraps the other errors in flag-parsing tracebacks; the
  config flags are checked right after parsing instead, so the one line names
  the file (and the line that raised) before anything runs.
"""

import dis
import os
import re
import sys
import textwrap

from absl import app
from absl import flags
from absl import logging
import ml_collections
from ml_collections.config_flags import config_flags

from ganad_jax import configs

INPUT_ERRORS = (ValueError, FloatingPointError, FileNotFoundError, NotADirectoryError,
                IsADirectoryError, PermissionError)
_PATH_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)
_RAISE_OPS = ("RAISE_VARARGS", "RERAISE")
_OURS = (os.path.dirname(os.path.abspath(__file__)),  # ganad_jax/
         os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "experiments"))


def _raise_site(error: BaseException):
  """(file, executing a raise statement) of the innermost frame of `error`'s traceback."""
  tb = error.__traceback__
  if tb is None:
    return None, False
  while tb.tb_next is not None:
    tb = tb.tb_next
  code = tb.tb_frame.f_code
  op = next((i.opname for i in dis.get_instructions(code) if i.offset == tb.tb_lasti), None)
  return os.path.abspath(code.co_filename), op in _RAISE_OPS


def _is_ours(path: str | None) -> bool:
  return path is not None and any(path.startswith(d + os.sep) for d in _OURS)


def is_input_error(error: BaseException) -> bool:
  """Whether `error` is a refused input (see the module docstring), not a bug."""
  if isinstance(error, _PATH_ERRORS) and error.filename is not None:
    return True
  if not isinstance(error, INPUT_ERRORS):
    return False
  path, raised = _raise_site(error)
  return raised and _is_ours(path)


def one_line(error: BaseException) -> str:
  """`error`'s message on one line (newlines and JAX's traceback notes dropped)."""
  text = str(error) if not isinstance(error, KeyError) or not error.args else str(error.args[0])
  return " ".join(part.strip() for part in text.splitlines() if part.strip())


def _unknown_override(error: BaseException, argv) -> str | None:
  """The message for an unknown `--config.<field>` override, or None if `error` is not one."""
  if not isinstance(error, (KeyError, AttributeError)):
    return None
  text = one_line(error).strip("'\"")
  match = re.match(r"\\?'([^'\\]+)\\?'", text) or re.match(r"([A-Za-z_][\w]*)", text)
  if match is None:
    return None
  name = match.group(1)
  flag = next((a.split("=", 1)[0] for a in argv[1:]
               if a.startswith("--config.") and re.search(rf"\.{re.escape(name)}(\.|=|$)", a)),
              None)
  if flag is None:
    return None
  hint = re.search(r'Did you mean "([^"]+)"', text)
  return (f"{flag}: unknown config field {name!r}"
          + (f" (did you mean {hint.group(1)!r}?)" if hint else "")
          + (_other_method(name) or "; ganad_jax/configs/ lists every field."))


def _other_method(section: str) -> str | None:
  """Why a config lacks `section` when it is another method's, or None."""
  owners = configs.methods.owners(section)
  if not owners:
    return None
  return (f": {section!r} is a section of method {' / '.join(owners)}, and a config holds its "
          "own method's sections only; choose the method where the config is built (e.g. "
          f"--config=configs/test.py:method={owners[0]})")


def _missing_section(error: BaseException) -> str:
  """Why a config file's KeyError / AttributeError names no field of its config, or ""."""
  if not isinstance(error, (KeyError, AttributeError)):
    return ""
  match = re.fullmatch(r"[A-Za-z_]\w*", one_line(error).strip("'\"\\"))
  return (match and _other_method(match.group(0)) or "").removeprefix(": ")


def _chain(error: BaseException) -> list[BaseException]:
  """`error` and the exceptions it was raised from or while handling, outermost first."""
  chain = []
  while error is not None and all(error is not e for e in chain):
    chain.append(error)
    error = error.__cause__ or error.__context__
  return chain


def _frames(error: BaseException):
  tb = error.__traceback__
  while tb is not None:
    yield tb.tb_frame, tb.tb_lineno
    tb = tb.tb_next


def _shown(path: str) -> str:
  """`path` relative to the working directory if under it, else absolute."""
  path = os.path.abspath(path)
  return os.path.relpath(path) if path.startswith(os.getcwd() + os.sep) else path


def _describe_load_error(flag: str, arg: str, error: BaseException,
                         parse_frame) -> str | None:
  """The message for `error`, raised while `--flag=arg` was loaded, or None for a bug."""
  path = arg.split(":", 1)[0]
  given = f"--{flag}={arg}"
  if not os.path.isfile(path):
    return (f"{given}: config file not found (a relative path is taken from the working "
            f"directory, {os.getcwd()}).")
  if isinstance(error, SyntaxError):
    return (f"{given}: syntax error in {_shown(error.filename or path)} line {error.lineno}: "
            f"{error.msg}.")
  if is_input_error(error):  # Our own checks, e.g. `parse_arg`: the message names the value.
    return f"{given}: {one_line(error)}"
  frames = [(f, n) for f, n in _frames(error) if not f.f_code.co_filename.startswith("<")]
  frame, lineno = frames[-1]
  if frame is parse_frame:  # Calling get_config itself failed.
    if isinstance(error, AttributeError) and error.name == "get_config":
      return f"{given}: the config file defines no get_config(arg=None)."
    return f"{given}: calling its get_config: {type(error).__name__}: {one_line(error)}"
  if _is_ours(os.path.abspath(frame.f_code.co_filename)):
    return None  # Not a refusal, raised in ganad_jax: a bug of ours keeps its traceback.
  config_dir = os.path.dirname(os.path.abspath(path))
  frame, lineno = next(((f, n) for f, n in reversed(frames)  # The config's line (or a sibling's).
                        if os.path.dirname(os.path.abspath(f.f_code.co_filename)) == config_dir),
                       (frame, lineno))
  reason = _missing_section(error)
  return (f"{given}: the config file raised {type(error).__name__}: {one_line(error)} "
          f"({_shown(frame.f_code.co_filename)} line {lineno}, in {frame.f_code.co_name})"
          + (f"; {reason}." if reason else "."))


def config_file_error(error: BaseException) -> str | None:
  """The one-line message if `error` comes from loading a `--config` file, else None.

  Recognised by the traceback of `error` (or of an exception it was raised
  from) passing through ml_collections' `ConfigFileFlagParser.parse`.

  Args:
    error: an exception raised while the flags were parsed, or by reading a
      config flag's value (ml_collections raises a missing file's error then).

  Returns:
    `--config=<arg>: <what failed>`: the file not found (with the working
    directory), its syntax error (file and line), an input error of our own
    helpers (e.g. `parse_arg`'s), or an exception raised by the config file's
    own code or a library it calls (type, message, and the config file's
    line). None if `error` is not about a config file, or is not a refusal
    and was raised inside ganad_jax (a bug of ours, which keeps its
    traceback).
  """
  for cause in reversed(_chain(error)):  # The original error first.
    for frame, _ in _frames(cause):
      if frame.f_code is config_flags.ConfigFileFlagParser.parse.__code__:
        return _describe_load_error(frame.f_locals["self"].name, frame.f_locals["path"], cause,
                                    frame)
  return None


def _check_config_flags() -> None:
  """Refuses a config flag whose file failed to load (ml_collections defers that error)."""
  for name in list(flags.FLAGS):
    flag = flags.FLAGS[name]
    if not config_flags.is_config_flag(flag) or not flag.present:
      continue
    if flag.value is None:
      _refuse(f"{flag.serialize()}: get_config returned None, not a ConfigDict.")
    if isinstance(flag.value, ml_collections.ConfigDict):
      continue
    try:
      flag.value.keys()  # ml_collections' stand-in raises the load error here.
    except Exception as e:  # pylint: disable=broad-except
      message = config_file_error(e)
      if message is None:
        raise
      _refuse(message)


def _refuse(message: str) -> None:
  logging.flush()
  print(f"error: {message}", file=sys.stderr, flush=True)
  sys.exit(1)


def _parse_flags(argv):
  """`app.parse_flags_with_usage`, refusing config files that fail to load in one line."""
  try:
    argv = flags.FLAGS(argv)
  except Exception as e:  # pylint: disable=broad-except
    message = config_file_error(e)
    if message is None and isinstance(e, (KeyError, AttributeError)):
      message = _unknown_override(e, argv)
    if message is None and isinstance(e, INPUT_ERRORS) and is_input_error(e):
      message = one_line(e)
    if message is not None:
      _refuse(message)
    if not isinstance(e, flags.Error):
      raise
    # As `app.parse_flags_with_usage` reports any other flag error.
    text = str(e)
    print(f"FATAL Flags parsing error:\n{textwrap.indent(text, '  ')}" if "\n" in text
          else f"FATAL Flags parsing error: {text}", file=sys.stderr)
    print("Pass --helpshort or --helpfull to see help on flags.", file=sys.stderr, flush=True)
    sys.exit(1)
  _check_config_flags()
  return argv


def run_main(main) -> None:
  """`absl.app.run(main)`, printing refused inputs as one line and exiting with status 1.

  Args:
    main: the script's `main(argv)`.

  Exits with status 1 after printing `error: <message>` on stderr for an input
  error (`is_input_error`, or an unknown --config.<field> override); every
  other exception propagates with its traceback.
  """
  def guarded(argv):
    try:
      return main(argv)
    except INPUT_ERRORS as e:
      if not is_input_error(e):
        raise
      _refuse(one_line(e))

  app.run(guarded, flags_parser=_parse_flags)
