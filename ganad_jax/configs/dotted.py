"""Setting one config field by its dotted name ("train.num_steps"), checked.

The one setter behind every place that sets a field named at run time: the
`Detector`'s overrides, an ensemble's grid points (`ganad_jax.ensemble`) and a
sweep's settings (`ganad_jax.sweep`).
"""

import difflib

import ml_collections


def set_field(config: ml_collections.ConfigDict, name: str, value, what: str) -> None:
  """Sets the field `name` (dotted, e.g. "train.num_steps") of `config` to `value`, in place.

  A list becomes a tuple (the fields hold tuples; lists cannot be overridden
  from the command line). The field's type is kept by ml_collections' own
  check (an int may go into a float field, a string may not).

  Args:
    config: the config (or a section of it) to change.
    name: the dotted field name below `config`.
    value: the new value.
    what: who asks, opening every message, e.g. "Sweep axis" or
      "config.ensemble.grid:".

  Raises:
    ValueError: `name` is not a field (naming the closest fields, and the
      section or field that is missing with those that exist there), is a
      section, or `value` does not fit the field's type.
  """
  *sections, key = name.split(".")
  node, path = config, []
  for section in sections:
    if section not in node or not isinstance(node[section], ml_collections.ConfigDict):
      there = [k for k in node.keys() if isinstance(node[k], ml_collections.ConfigDict)]
      raise ValueError(f"{what} {name!r} is not a config field.{_hint(config, name)} There is no "
                       f"section {section!r} in {_label(path)}; sections there: "
                       f"{', '.join(sorted(there))}.")
    node, path = node[section], path + [section]
  if key not in node:
    raise ValueError(f"{what} {name!r} is not a config field.{_hint(config, name)} There is no "
                     f"field {key!r} in {_label(path)}; fields there: "
                     f"{', '.join(sorted(node.keys()))}.")
  if isinstance(node[key], ml_collections.ConfigDict):
    raise ValueError(f"{what} {name!r} is a config section, not a field; set one of its fields.")
  if isinstance(value, list):
    value = tuple(value)
  try:
    node[key] = value
  except (TypeError, ValueError) as e:
    raise ValueError(f"{what} value {value!r} of {name!r} does not fit the field "
                     f"({type(node[key]).__name__}): {e}") from None


def _label(path: list[str]) -> str:
  return "section " + ".".join(path) if path else "the config"


def _hint(config: ml_collections.ConfigDict, name: str) -> str:
  close = difflib.get_close_matches(name, _field_names(config), n=3)
  return f" Did you mean {', '.join(close)}?" if close else ""


def _field_names(config: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
  names = []
  for key, value in config.items():
    full = f"{prefix}{key}"
    names += (_field_names(value, full + ".") if isinstance(value, ml_collections.ConfigDict)
              else [full])
  return names
