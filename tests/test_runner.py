"""Tests of `runner`: the patch protocol's hooks (nets' input, the step's crops, resume), `embed`."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganad_jax import checkpoints
from ganad_jax import data
from ganad_jax import runner
from ganad_jax import train
from ganad_jax.methods import base
import helpers

PATCHES = {"data.image_size": 32, "patch.size": 16, "patch.stride": 8}


def test_patch_size_zero_builds_the_whole_image_run():
  config = helpers.tiny_config()
  run = runner.build(config, (16, 16, 1))
  assert run.patch is None and "patch" not in run.meta  # Earlier checkpoints still resume.


def test_with_patches_the_nets_take_crops_and_the_record_names_them():
  config = helpers.tiny_config(**PATCHES)
  run = runner.build(config, (32, 32, 1))
  assert run.patch.size == 16 and run.meta["patch"]["size"] == 16
  assert run.meta["input_shape"] == [32, 32, 1]
  _, shardings = runner.abstract_init(run, jnp.zeros((16, 32, 32, 1)))
  state = runner.init_state(run, jnp.zeros((16, 32, 32, 1)), shardings)
  outputs = run.method.score(state, jnp.zeros((3, 16, 16, 1)), run.keys.score)
  assert outputs["map"].shape == (3, 16, 16)


@pytest.mark.parametrize("method", ["anogan", "ae"])  # AnoGAN's make refuses, the AE's init.
def test_crops_the_nets_cannot_take_are_named(method):
  config = helpers.tiny_config(method, **{"data.image_size": 32, "patch.size": 24,
                                          "patch.stride": 8})
  with pytest.raises(ValueError, match=r"With patch.size=24 the nets see \(24, 24, 1\) crops "
                                       r"of the \(32, 32, 1\) images"):
    run = runner.build(config, (32, 32, 1))
    runner.abstract_init(run, jnp.zeros((16, 32, 32, 1)))


def test_patches_need_images():
  with pytest.raises(ValueError, match=r"patch.size=16: the patch protocol needs images"):
    runner.build(helpers.tiny_config(**PATCHES), (30,))


def _recording_method():
  """A Method whose step returns the batch it was given as its metric."""
  def train_step(state, batch, key):
    del key
    return base.next_state(state), {"loss": jnp.sum(batch), "batch": batch}
  return base.Method(init=None, train_step=train_step, score=None)


def test_train_step_crops_its_gathered_batch_by_the_step():
  images = jnp.asarray(np.arange(8 * 10 * 12, dtype=np.float32).reshape(8, 10, 12, 1))
  data_key, step_key = jax.random.key(0), jax.random.key(1)
  step_fn = jax.jit(runner.make_train_step(_recording_method(), 4, crop_size=5))
  state = {"step": jnp.asarray(3, jnp.int32)}
  _, metrics = step_fn(state, images, data_key, step_key)
  crops = np.asarray(metrics["batch"])
  assert crops.shape == (4, 5, 5, 1)
  idx = np.asarray(runner.batch_indices(data_key, 3, 8, 4))
  for i, crop in zip(idx, crops):  # Unique pixel values: the corner names the window.
    r, c = divmod(int(crop[0, 0, 0]) - i * 120, 12)
    np.testing.assert_array_equal(crop, np.asarray(images[i, r:r + 5, c:c + 5]))
  _, again = step_fn(state, images, data_key, step_key)
  np.testing.assert_array_equal(np.asarray(again["batch"]), crops)  # A function of (seed, step).
  _, next_step = step_fn({"step": jnp.asarray(4, jnp.int32)}, images, data_key, step_key)
  assert not np.array_equal(np.asarray(next_step["batch"]), crops)


def test_a_resumed_patch_run_replays_the_uninterrupted_one(tmp_path):
  config = helpers.tiny_config(**PATCHES)
  splits = data.load(config.data, config.seed)
  full = train.train(config, str(tmp_path / "full"), splits).state
  killed = helpers.tiny_config(**PATCHES, **{"train.num_steps": 3})
  train.train(killed, str(tmp_path / "resumed"), splits)
  _, resumed, info, _ = train.train(config, str(tmp_path / "resumed"), splits)
  assert info["steps"] == 6
  assert checkpoints.digest(resumed) == checkpoints.digest(full)


def _embedding_method():
  """A Method with `embed` (a pytree of two feature maps, scaled by the state's "w")."""
  def embed(state, x):
    return {"mean": x.mean(axis=-1) * state["w"], "max": x.max(axis=(1, 2, 3))}
  method = _recording_method()
  train_step = lambda state, batch, key: method.train_step(state, batch["mean"], key)
  return method._replace(train_step=train_step, embed=embed)


def test_features_computed_once_are_what_the_step_would_embed():
  images = np.asarray(jax.random.uniform(jax.random.key(2), (10, 6, 6, 3)))
  method = _embedding_method()
  state = {"step": jnp.asarray(2, jnp.int32), "w": jnp.asarray(3.0)}
  run = runner.Run(method, None, None, None, None, 4)
  features = runner.embed_training_split(run, state, images, 4, max_memory_mb=1)
  assert features["mean"].shape == (10, 6, 6) and features["max"].shape == (10,)
  np.testing.assert_allclose(features["mean"], images.mean(-1) * 3.0, rtol=1e-6)  # Padding cut.
  keys = jax.random.key(0), jax.random.key(1)
  _, once = jax.jit(runner.make_train_step(method, 4))(state, features, *keys)
  _, in_step = jax.jit(runner.make_train_step(method, 4, embed_in_step=True))(
      state, images, *keys)
  np.testing.assert_allclose(once["batch"], in_step["batch"], rtol=1e-6)  # The same batch.


def test_features_over_the_memory_limit_are_refused_before_any_is_computed():
  run = runner.Run(_embedding_method()._replace(embed=lambda state, x: x), None, None, None,
                   None, 4)
  images = np.zeros((2048, 32, 32, 1), np.float32)  # 8 MB of features.
  with pytest.raises(ValueError, match=r"features of the 2048 training examples need 8 MB, "
                                       r"over features.max_memory_mb=4"):
    runner.embed_training_split(run, {"step": 0}, images, 64, max_memory_mb=4)
