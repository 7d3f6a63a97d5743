"""`Spec`: what a method registers about its config (its sections, their checks)."""

from typing import Callable, NamedTuple

import ml_collections


class Spec(NamedTuple):
  """A method's part of the config.

  Attributes:
    sections: {dotted path: factory of its defaults} of the sections the
      method reads, e.g. {"ssim": ssim_config}. A path may be another
      method's section or a part of one ("anogan.search"), and several
      methods may name the same path ("pretrained"); a config of this method
      holds these sections and no other method's.
    check: check(config) raises ValueError naming a field and its value that
      the method cannot take; None: no check beyond the fields' types.
  """
  sections: dict[str, Callable[[], ml_collections.ConfigDict]]
  check: Callable[[ml_collections.ConfigDict], None] | None = None


def require(condition: bool, field: str, value, rule: str) -> None:
  """Raises ValueError("padim.eps=0.0 must be > 0 (why)") unless `condition`."""
  if not condition:
    raise ValueError(f"{field}={value!r} {rule}.")
