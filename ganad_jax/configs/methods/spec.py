"""`Spec`: what a method registers about its config (its sections, their checks)."""

import math
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


def check_wgan_gp(n_critic, gp_weight, prefix: str) -> None:
  """ValueError naming the field unless n_critic is an integer >= 1 and gp_weight a number >= 0.

  (That n_critic divides train.batch_size is checked when the method is
  built, `methods.wgan_gp.check_batch`, so that a method's defaults stay valid.)
  """
  if int(n_critic) != n_critic or n_critic < 1:
    raise ValueError(f"{prefix}.n_critic={n_critic!r} must be an integer >= 1.")
  if not math.isfinite(float(gp_weight)) or gp_weight < 0:
    raise ValueError(f"{prefix}.gp_weight={gp_weight!r} must be a finite number >= 0.")
