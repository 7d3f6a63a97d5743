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
"""

import dis
import os
import re
import sys

from absl import app
from absl import logging

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
          + "; ganad_jax/configs/ lists every field.")


def _refuse(message: str) -> None:
  logging.flush()
  print(f"error: {message}", file=sys.stderr, flush=True)
  sys.exit(1)


def _parse_flags(argv):
  try:
    return app.parse_flags_with_usage(argv)
  except (KeyError, AttributeError) as e:
    message = _unknown_override(e, argv)
    if message is None:
      raise
    _refuse(message)
  except INPUT_ERRORS as e:  # Raised by a config file's get_config through our helpers.
    if not is_input_error(e):
      raise
    _refuse(one_line(e))


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
