"""Tests of `methods.vae`: training, scoring and errors."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganad_jax import methods
import helpers

IMAGE = (16, 16, 1)
VECTOR = (10,)


@pytest.mark.parametrize("shape", [IMAGE, VECTOR])
def test_vae_trains_and_scores(shape):
  _, _, train_step, score = helpers.compiled("vae", shape)
  state, new_state, metrics = helpers.one_step("vae", shape)
  assert helpers.all_changed(state["params"], new_state["params"])
  for name in ("loss", "recon", "kl"):
    assert np.isfinite(float(metrics[name])), name
  assert float(metrics["kl"]) >= 0.0
  np.testing.assert_allclose(float(metrics["loss"]), float(metrics["recon"] + metrics["kl"]),
                             rtol=1e-5)
  # beta is read from the state.
  half = dict(state, hparams=dict(state["hparams"], beta=jnp.float32(0.5)))
  _, m_half = train_step(half, helpers.batch(shape), jax.random.key(1))
  np.testing.assert_allclose(float(m_half["loss"]), float(m_half["recon"] + 0.5 * m_half["kl"]),
                             rtol=1e-5)
  # A few steps on one batch lower the loss.
  s = new_state
  for i in range(15):
    s, m = train_step(s, helpers.batch(shape), jax.random.key(10 + i))
  assert float(m["loss"]) < float(metrics["loss"])

  x = helpers.batch(shape, seed=3)
  out = helpers.assert_batch_independent(score, s, x, ("score", "score_elbo"))
  assert out["recon"].shape == x.shape and ("map" in out) == (shape == IMAGE)
  for name in ("score", "score_elbo"):
    assert out[name].shape == (8,) and np.all(np.isfinite(out[name])), name
  assert np.all(out["score_elbo"] >= 0.0)
  np.testing.assert_allclose(out["score"], np.mean(np.square(x - out["recon"]).reshape(8, -1), 1),
                             rtol=1e-5)
  # "score" is deterministic (posterior mean); the ELBO estimate is sampled.
  other_key = score(s, x, jax.random.key(7))
  np.testing.assert_array_equal(other_key["score"], out["score"])
  assert not np.allclose(other_key["score_elbo"], out["score_elbo"])
  # sigma is read from the state: a wider decoder lowers the reconstruction term.
  wide = score(dict(s, hparams=dict(s["hparams"], sigma=jnp.float32(1.0))), x, jax.random.key(2))
  assert np.all(wide["score_elbo"] < out["score_elbo"])


def test_vae_rejects_bad_config():
  with pytest.raises(ValueError, match="vae.sigma"):
    methods.make(helpers.method_config("vae", vae__sigma=0.0), VECTOR)
  with pytest.raises(ValueError, match="num_score_samples"):
    methods.make(helpers.method_config("vae", vae__num_score_samples=0), VECTOR)
  with pytest.raises(ValueError, match="images"):
    methods.make(helpers.method_config("vae"), (4, 4))


@pytest.mark.parametrize("name", ["vae_digits.py"])
def test_experiment_configs_are_valid(name):
  assert helpers.experiment_config(name).method == "vae"
