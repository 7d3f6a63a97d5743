"""How a method reads another trained run without importing the layer that reads workdirs.

The Gaussian scorer's features="workdir" are the nets of a trained run
(`ganad_jax.workdir.restore`). The workdir layer imports the methods (it
builds the run's method), so a method cannot import it back; instead
`ganad_jax.workdir` hands its `restore` to `provide` when it is imported,
and a method calls `restore` here. Every program that trains or scores a
run (train.py, the Detector, evaluate.py) imports the workdir layer first.
"""

from typing import Callable

_READER: list[Callable] = []  # Set once, by ganad_jax.workdir.


def provide(reader: Callable) -> None:
  """Registers `ganad_jax.workdir.restore` (called by that module on import)."""
  _READER[:] = [reader]


def restore(workdir: str, input_shape: tuple[int, ...], **kwargs):
  """`ganad_jax.workdir.restore(workdir, input_shape, **kwargs)`: a trained run (`Trained`).

  Raises:
    RuntimeError: `ganad_jax.workdir` was not imported (a bug of the caller).
    As `ganad_jax.workdir.restore`.
  """
  if not _READER:
    raise RuntimeError("methods.runs.restore: no reader of trained runs; import "
                       "ganad_jax.workdir first (it provides one).")
  return _READER[0](workdir, tuple(input_shape), **kwargs)
