"""Tests of `sharding`: the ("members", "data") mesh on 8 CPU devices (tests/conftest.py).

Level 4 transform equivalences: a training run whose batches are split over 8
devices (training set sharded by rows) equals the 1-device run, and a latent
search whose samples are split over the devices equals the unsharded one, to
float32 tolerance. The sharded ensemble (members and data axes together) is in
tests/test_ensemble.py, beside the run it is compared with; bfloat16 compute in
tests/methods/test_base.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganad_jax import configs
from ganad_jax import data
from ganad_jax import latent_search
from ganad_jax import scoring
from ganad_jax import sharding
from ganad_jax import train
from ganad_jax.methods import anogan
from configs import test as test_config


def _mesh_config(devices=0, members=0, train_data="replicated"):
  config = configs.mesh.mesh_config()
  config.devices, config.members, config.train_data = devices, members, train_data
  return config


def test_eight_cpu_devices():
  assert jax.device_count() == 8


@pytest.mark.parametrize("devices,members,num_members,shape", [
    (8, 0, 2, {"members": 2, "data": 4}),
    (8, 0, 3, {"members": 1, "data": 8}),
    (8, 4, 4, {"members": 4, "data": 2}),
    (0, 0, 4, {"members": 1, "data": 1}),  # Auto on a CPU: one device.
])
def test_mesh_shapes(devices, members, num_members, shape):
  mesh = sharding.make_mesh(_mesh_config(devices, members), num_members, (16, 64))
  assert dict(mesh.shape) == shape and mesh.axis_names == ("members", "data")


@pytest.mark.parametrize("devices,members,num_members,batches,train_data,match", [
    (9, 0, 1, (16,), "replicated", r"config\.mesh\.devices=9 but 8 devices exist"),
    (8, 3, 3, (16,), "replicated", r"config\.mesh\.members=3 must divide both the device count"),
    (8, 0, 1, (12,), "replicated", r"data axis has 8 devices .* does not divide the batch size 12"),
    (8, 0, 1, (16,), "rows", r"config\.mesh\.train_data must be one of"),
])
def test_mesh_errors_name_the_field(devices, members, num_members, batches, train_data, match):
  with pytest.raises(ValueError, match=match):
    sharding.make_mesh(_mesh_config(devices, members, train_data), num_members, batches)


def _assert_close(a, b, rtol=1e-4, atol=1e-6):
  jax.tree.map(lambda x, y: np.testing.assert_allclose(np.asarray(x, np.float64),
                                                       np.asarray(y, np.float64),
                                                       rtol=rtol, atol=atol), a, b)


def test_sharded_training_equals_one_device(tmp_path):
  config = test_config.get_config("method=ae")
  config.train.num_steps = 3
  splits = data.load(config.data, 0)
  outputs = []
  for devices, train_data in ((1, "replicated"), (8, "sharded")):
    config.mesh.devices, config.mesh.train_data = devices, train_data
    run, state, _, _ = train.train(config, str(tmp_path / str(devices)), splits)
    assert dict(run.mesh.shape) == {"members": 1, "data": devices}
    assert len(jax.tree.leaves(state)[0].sharding.device_set) == devices  # Replicated state.
    scores = scoring.Scorer(run, 16).members(state, splits.val.x)[0]
    outputs.append((jax.device_get(state), scores))
  # Batch statistics and gradients are reduced across the 8 devices: the same
  # numbers up to float32 summation order.
  _assert_close(outputs[0][0], outputs[1][0])
  _assert_close(outputs[0][1], outputs[1][1])


def test_sharded_latent_search_equals_unsharded():
  config = test_config.get_config("method=anogan")
  shape = (16, 16, 1)
  nets = anogan.Networks(config, shape)
  method = anogan.make(config, shape)
  x = jax.random.uniform(jax.random.key(0), (10, *shape), minval=-1.0, maxval=1.0)
  state = jax.jit(method.init)(jax.random.key(1), x)
  search = configs.methods.anogan.search_config()
  search.steps, search.restarts, search.init, search.chunk_size = 6, 2, "normal", 4
  generate_fn, feature_fn = anogan.search_fns(nets, state, "penultimate")

  def run(x):
    return latent_search.search(generate_fn, feature_fn, x, jax.random.key(2), search, 4,
                                hparams={"lam": jnp.float32(0.3), "lr": jnp.float32(0.05)})

  plain = jax.jit(run)(x)
  mesh = sharding.make_mesh(_mesh_config(8), 1, ())
  with jax.set_mesh(mesh):
    assert latent_search.resolved_chunk_size(search, x) == 8  # Rounded up to the data axis.
    lowered = jax.jit(run).lower(x)
    sharded = jax.jit(run)(x)
  # Each chunk's rows (samples x restarts) are split 8 ways over "data".
  text = lowered.as_text()
  assert "sharding_constraint" in text and "{\"data\"}" in text
  _assert_close(sharded, plain)
  assert plain.score.shape == (10,) and np.all(np.isfinite(plain.score))
