"""What config files call: their typed argument (`parse_arg`), another config file, data paths."""

import importlib.util
import os

import ml_collections

_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


def parse_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
  """The `key=value` pairs of a config file's argument, typed by their defaults.

  `--config=configs/anogan_digits.py:digit=3` calls `get_config("digit=3")`;
  every config file reads its argument with this function, so every argument
  has the same form: comma-separated `key=value` pairs (no value can hold a
  comma), each key one of `defaults`, each value parsed as the type of its
  default (int, float, bool: true/false, str).

  Args:
    arg: the config file's argument; None or "" keeps every default.
    **defaults: the keys the config file takes, with their default values.

  Returns:
    A ConfigDict with one field per key of `defaults`.

  Raises:
    ValueError: a pair without "=", an unknown or repeated key, or a value
      that does not parse as its default's type, naming it and the keys taken.
  """
  values = dict(defaults)
  taken = ", ".join(f"{k}={v!r}" for k, v in defaults.items()) or "none"
  seen = set()
  for pair in (arg or "").split(","):
    if not pair:
      continue
    key, sep, text = pair.partition("=")
    key = key.strip()
    if not sep or key not in defaults:
      raise ValueError(f"Config argument {pair!r} (in {arg!r}) is not key=value with a known key; "
                       f"keys taken (with defaults): {taken}.")
    if key in seen:
      raise ValueError(f"Config argument {arg!r} sets {key!r} twice.")
    seen.add(key)
    values[key] = _parse(key, text, defaults[key])
  return ml_collections.ConfigDict(values)


def _parse(key: str, text: str, default):
  kind = type(default)
  try:
    if kind is bool:
      if text.lower() not in _TRUE + _FALSE:
        raise ValueError(f"not one of {_TRUE + _FALSE}")
      return text.lower() in _TRUE
    if kind in (int, float, str):
      return kind(text)
  except ValueError as e:
    raise ValueError(f"Config argument {key}={text!r} is not of type {kind.__name__}: "
                     f"{e}.") from None
  raise TypeError(f"parse_arg: the default of {key!r} must be an int, float, bool or str; "
                  f"got {default!r}.")


def sibling_config(config_file: str, name: str, arg: str | None = None
                   ) -> ml_collections.ConfigDict:
  """`get_config(arg)` of the config file `name`.py in the folder of `config_file`.

  Loaded by path: `ml_collections.config_flags` loads config files without the
  repository root on sys.path, so `import configs.<name>` would fail there.

  Args:
    config_file: the calling config file's `__file__`.
    name: the other config file's name without ".py", e.g. "ae_digits".
    arg: its argument (`parse_arg`'s key=value pairs); None: its defaults.

  Returns:
    A fresh ConfigDict, the caller's to change.
  """
  path = os.path.join(os.path.dirname(os.path.abspath(config_file)), name + ".py")
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def shared_data_path(config_file: str, name: str) -> str:
  """The data folder `name` in ../shared/data beside the repository of `config_file`.

  Args:
    config_file: a config file's `__file__` (any file one folder below the
      repository root).
    name: the folder under shared/data, e.g. "magnetic_tile".

  Returns:
    The absolute, normalised path, the same wherever the command runs from.
  """
  return os.path.normpath(os.path.join(
      os.path.dirname(os.path.abspath(config_file)), "..", "..", "shared", "data", name))
