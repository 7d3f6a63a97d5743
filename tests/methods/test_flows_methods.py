"""Tests of the flow methods (fastflow, cflow, msflow) on a random-initialised backbone.

Each: the train step on embedded features lowers nothing to NaN and moves the
loss; score gives a finite (N, H, W) map at the input size and the image
score the method defines; an ensemble of one trains through `train.train`
(the step embeds) and scores.
"""

import jax
import numpy as np
import pytest

from configs import test as test_config
from ganad_jax import data
from ganad_jax import ensemble
from ganad_jax import methods
from ganad_jax import scoring
from ganad_jax import train
import helpers

pytestmark = pytest.mark.usefixtures("weights_cache")

# The smallest nets of each method.
TINY = {"fastflow": {"fastflow.flow_steps": 2},
        "cflow": {"cflow.coupling_blocks": 2, "cflow.condition_vec": 8, "cflow.fiber_batch": 16,
                  "cflow.fiber_steps": 2},
        "msflow": {"msflow.parallel_blocks": (1, 1, 1), "msflow.c_conds": (8, 8, 8)}}
METHODS = tuple(name for name in TINY if name in methods.NAMES)


def _config(method, weights, name="efficientnet-lite0", **updates):
  return helpers.pretrained_config(method, weights, name=name, **{**TINY[method], **updates})


# Each method on one backbone and input (gray / RGB, two sizes): the suite stays short.
CASES = [("fastflow", "efficientnet-lite0", (32, 32, 1)), ("cflow", "resnet18", (24, 24, 3)),
         ("msflow", "efficientnet-lite0", (32, 32, 3))]


@pytest.mark.parametrize("method_name,name,shape", [c for c in CASES if c[0] in METHODS])
def test_train_steps_on_features_then_score(backbone_weights, method_name, name, shape):
  config = _config(method_name, backbone_weights, name)
  method = methods.make(config, shape)
  x = np.random.default_rng(0).uniform(-1, 1, (4, *shape)).astype(np.float32)
  state = jax.jit(method.init)(jax.random.key(0), x[:2])
  features = jax.jit(method.embed)(state, x)
  step = jax.jit(method.train_step)
  losses = []
  for i in range(3):
    state, metrics = step(state, features, jax.random.key(i))
    losses.append(float(metrics["loss"]))
  assert np.all(np.isfinite(losses)) and losses[0] != losses[-1], losses
  out = jax.jit(method.score)(state, x, jax.random.key(0))
  assert out["map"].shape == (4, *shape[:2]) and out["score"].shape == (4,)
  assert np.all(np.isfinite(out["map"])) and np.all(np.isfinite(out["score"]))
  if method_name in ("fastflow", "cflow"):  # Their image score: the map's maximum.
    np.testing.assert_allclose(out["score"], out["map"].max(axis=(1, 2)), rtol=1e-6)


@pytest.mark.parametrize("method_name", ["fastflow"])  # The runner's path is the same for all.
def test_an_ensemble_of_one_flow_trains_two_steps_and_scores(backbone_weights, method_name,
                                                             tmp_path):
  config = test_config.get_config(f"method={method_name}")
  config.update_from_flattened_dict({
      **TINY[method_name], "pretrained.weights": backbone_weights["efficientnet-lite0"],
      "pretrained.input_size": 32, "train.num_steps": 2, "train.batch_size": 8,
      "ensemble.seeds": (0,)})
  splits = data.load(config.data, 0)
  run, state, info = train.train(config, str(tmp_path / "run"), splits)[:3]
  assert ensemble.plan(config) is not None and info["steps"] == 2
  [outputs] = scoring.Scorer(run, 8).members(state, splits.val.x[:8])
  assert outputs["score"].shape == (8,) and np.all(np.isfinite(outputs["score"]))
  assert outputs["map"].shape == (8, *splits.val.x.shape[1:3])


def test_unknown_stage_is_refused(backbone_weights):
  config = _config("fastflow", backbone_weights, **{"fastflow.layers": ("stage2", "layer9")})
  with pytest.raises(ValueError, match=r"fastflow.layers: 'layer9' not among the stages"):
    methods.make(config, (32, 32, 1))
