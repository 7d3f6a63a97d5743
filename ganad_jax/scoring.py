"""`Scorer`: the one way to score inputs with a trained state of a run.

Built from a `runner.Run` (`Scorer(run, batch_size)`), it jits the method's
`score` on the run's ("members", "data") mesh (the batch split over "data",
an ensemble's members over "members", `sharding.over_members`), gives every
batch the run's score key, scores fixed-size padded batches
(`evaluation.score_split`, which refuses non-finite inputs and scores), and
returns one dict of outputs per member. With the patch protocol it scores
every tile of the images and stitches the tiles' outputs back to the images
(`patches.tile`, `patches.image_outputs`).

Who builds one: the training loop (`ganad_jax.train`: the validation means of
early stopping and the final val / test scoring), `workdir.restore`
(`Trained.scorer`: experiments/evaluate.py, experiments/fingerprint.py,
`Detector.load`) and `Detector.fit`. `score=` takes another score function of
the method with `score`'s signature, e.g. the references' train-mode
BatchNorm `method.paper_score.score` (`ganad_jax.paper_repro`), which scores
its own unpadded batches through `Scorer.batch`.
"""

import jax
import jax.numpy as jnp
import numpy as np

from ganad_jax import evaluation
from ganad_jax import patches
from ganad_jax import runner
from ganad_jax import sharding

P = sharding.P


class Scorer:
  """Scores inputs with states of one run; stateless but for its compiled function.

  Attributes:
    run: the `runner.Run` it scores for (method, members, keys, mesh, patch).
    batch_size: rows (tiles with the patch protocol) per padded batch.
    key: the key every batch gets: the run's score key ((M,) for an ensemble).
  """

  def __init__(self, run: runner.Run, batch_size: int, state_sharding=None, score=None):
    """Builds the scorer; nothing is compiled before the first call.

    Args:
      run: the run (`runner.build`).
      batch_size: rows per padded batch (`config.eval.batch_size`).
      state_sharding: the states' shardings (`runner.abstract_init`); None
        takes `sharding.state_sharding` of the first state scored.
      score: score(state, batch (B, ...), key) -> {name: (B, ...)}, a score
        function of the run's method (for an ensemble: of its stacked
        method, taking a stacked state and (M,) keys); default
        `run.method.score`.
    """
    self.run = run
    self.batch_size = int(batch_size)
    self._score = run.method.score if score is None else score
    self._state_sharding = state_sharding
    self._fn = None

  @property
  def key(self) -> jax.Array:
    return self.run.keys.score

  def program(self, state):
    """The jitted fn(state, batch, key) -> outputs, the batch leading ((B, M, ...) stacked).

    Jitted once, for the shardings given at construction, else for those of
    `state` (a state, or its abstract `jax.ShapeDtypeStruct` tree).
    """
    if self._fn is not None:
      return self._fn
    run = self.run
    if self._state_sharding is None:
      self._state_sharding = sharding.state_sharding(run.mesh, state, run.stacked)

    def score_batch(state, batch, key):
      return self._score(state, sharding.constrain(batch, P("data")), key)

    if run.stacked:
      members_score = sharding.over_members(score_batch, run.mesh,
                                            (P("members"), P(), P("members")), P("members"))

      def fn(state, batch, key):  # Batch-major, the layout `evaluation.score_split` slices.
        return jax.tree.map(lambda a: jnp.moveaxis(a, 0, 1), members_score(state, batch, key))
    else:
      fn = score_batch
    replicated = sharding.replicated(run.mesh)
    self._fn = jax.jit(fn, in_shardings=(self._state_sharding, replicated, run.key_sharding()),
                       out_shardings=replicated)
    return self._fn

  def batch(self, state, x) -> dict:
    """The score function's outputs on one batch x (B, ...) as it is (no padding, no tiling).

    With the run's score key; an ensemble's come back (B, M, ...). What
    `ganad_jax.paper_repro` needs: its batches are the references' own.
    """
    with jax.set_mesh(self.run.mesh):
      return self.program(state)(state, x, self.key)

  def members(self, state, x: np.ndarray, cache_dir: str | None = None
              ) -> list[dict[str, np.ndarray]]:
    """Per member (one for a single run), the outputs over x (N, ...): each with N leading.

    Scored in padded batches of `batch_size` rows (`evaluation.score_split`;
    `cache_dir` keeps its finished batches). With the patch protocol every
    image's tiles are scored and the outputs per tile become outputs per image
    (`patches.image_outputs`: "score" (N,), "map" (N, H, W), ...).

    Raises:
      ValueError: an empty x or non-finite inputs; FloatingPointError:
        non-finite scores (`evaluation.score_split`).
    """
    run = self.run
    rows = x if run.patch is None else patches.tile(x, run.patch)
    with jax.set_mesh(run.mesh):
      out = evaluation.score_split(self.program(state), state, rows, self.key,
                                   self.batch_size, cache_dir=cache_dir)
    outs = [out] if not run.stacked else [{k: v[:, m] for k, v in out.items()}
                                          for m in range(run.num_members)]
    if run.patch is None:
      return outs
    return [patches.image_outputs(o, x.shape[1:3], run.patch) for o in outs]


def stack_members(outs: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
  """`Scorer.members`' list as one dict, the member axis second: (N, M, ...) per output."""
  return {k: np.stack([o[k] for o in outs], axis=1) for k in outs[0]}
