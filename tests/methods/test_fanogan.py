"""Tests of `methods.wgan_gp` and `methods.fanogan`: the penalty, the critic steps, both stages,
the score, resume across the stage boundary, AnoGAN's WGAN-GP option, config errors."""

import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ganad_jax import checkpoints
from ganad_jax import configs
from ganad_jax import data
from ganad_jax import methods
from ganad_jax import train
from ganad_jax.methods import base
from ganad_jax.methods import wgan_gp
import helpers

IMAGE = (16, 16, 1)


def _linear_critic(params, x):
  return x.reshape(x.shape[0], -1) @ params["w"] + params["c"]


def test_gradient_penalty_of_a_linear_critic_is_hand_computed():
  # D(x) = w . x + c has gradient w at every interpolate: slope ||w|| = 5 for w = (3, 4),
  # penalty (5 - 1)^2 = 16 whatever alpha.
  params = {"w": jnp.asarray([3.0, 4.0]), "c": jnp.asarray(0.5)}
  real = jnp.asarray([[1.0, 2.0], [0.0, -1.0], [2.0, 2.0]])
  fake = jnp.asarray([[0.0, 0.0], [1.0, 1.0], [-1.0, 3.0]])
  assert float(wgan_gp.gradient_penalty(_linear_critic, params, real, fake,
                                        jax.random.key(0))) == pytest.approx(16.0)
  # Critic loss: mean D(fake) - mean D(real) + 10 * 16; D(real) = 11.5, -3.5, 14.5 (mean 22.5 / 3),
  # D(fake) = 0.5, 7.5, 9.5 (mean 17.5 / 3).
  loss, metrics = wgan_gp.critic_loss(_linear_critic, params, real, fake, jax.random.key(0), 10.0)
  assert float(metrics["wasserstein"]) == pytest.approx(5.0 / 3.0, rel=1e-6)
  assert float(loss) == pytest.approx(-5.0 / 3.0 + 160.0, rel=1e-6)
  # A unit-norm gradient costs nothing.
  unit = {"w": jnp.asarray([0.6, 0.8]), "c": jnp.asarray(0.0)}
  assert float(wgan_gp.gradient_penalty(_linear_critic, unit, real, fake,
                                        jax.random.key(0))) == pytest.approx(0.0, abs=1e-10)


def test_gradient_penalty_draws_alpha_per_sample():
  # D(x) = 0.5 ||x||^2 has gradient x^ = x + alpha (0 - x) (fake = 0): slope (1 - alpha_i) ||x_i||.
  def quadratic(params, x):
    return 0.5 * params * jnp.sum(jnp.square(x), axis=1)
  real = jnp.asarray([[3.0, 4.0], [6.0, 8.0]])
  key = jax.random.key(3)
  alpha = jax.random.uniform(key, (2, 1))[:, 0]
  expected = np.mean(((1.0 - np.asarray(alpha)) * np.array([5.0, 10.0]) - 1.0)**2)
  got = wgan_gp.gradient_penalty(quadratic, jnp.asarray(1.0), real, jnp.zeros_like(real), key)
  assert float(got) == pytest.approx(expected, rel=1e-5)


def test_critic_steps_are_n_critic_adam_steps_each_on_its_own_slice():
  n_critic, b = 3, 2
  real = jax.random.normal(jax.random.key(0), (n_critic * b, 2))
  params = {"w": jnp.asarray([0.3, -0.2]), "c": jnp.asarray(0.1)}
  tx = optax.adam(0.1, b1=0.0, b2=0.9)
  make_fake = lambda key, n: jax.random.normal(key, (n, 2)) + 2.0
  key = jax.random.key(1)
  got, opt_state, metrics = wgan_gp.critic_steps(
      _linear_critic, make_fake, tx, params, tx.init(params),
      wgan_gp.critic_batches(real, n_critic), key, 10.0)
  # The same steps by hand, in a Python loop.
  expected, expected_opt = params, tx.init(params)
  for i, step_key in enumerate(jax.random.split(key, n_critic)):
    z_key, alpha_key = jax.random.split(step_key)
    chunk, fake = real[i * b:(i + 1) * b], make_fake(z_key, b)
    grads, last = jax.grad(wgan_gp.critic_loss, argnums=1, has_aux=True)(
        _linear_critic, expected, chunk, fake, alpha_key, 10.0)
    expected, expected_opt = base.adam_update(tx, grads, expected_opt, expected)
  jax.tree.map(lambda a, e: np.testing.assert_allclose(a, e, rtol=1e-5), got, expected)
  assert int(opt_state[0].count) == n_critic
  assert float(metrics["gp"]) == pytest.approx(float(last["gp"]), rel=1e-5)


def _counts(opt_state):
  """The step counts of the Adam / RMSProp states in a tree (optax's `count` fields)."""
  found = []
  for path, leaf in jax.tree_util.tree_leaves_with_path(opt_state):
    if getattr(path[-1], "name", None) == "count":
      found.append(int(leaf))
  return found


def _tiny(**overrides):
  config = helpers.tiny_config("fanogan", **overrides)
  configs.validate(config)
  return config


@pytest.fixture(scope="module")
def fanogan():
  config = _tiny()
  m = methods.make(config, IMAGE)
  x = helpers.batch(IMAGE, n=16)
  state = jax.jit(m.init)(jax.random.key(0), x)
  return config, m, jax.jit(m.train_step), state, x


def test_gan_stage_runs_n_critic_critic_steps_and_one_generator_step(fanogan):
  config, _, train_step, state, x = fanogan
  new, metrics = train_step(state, x, jax.random.key(1))
  assert float(metrics["stage"]) == 0.0 and int(new["step"]) == 1
  assert set(_counts(new["opt_state"]["d"])) == {config.fanogan.n_critic}  # 2 critic steps.
  assert set(_counts(new["opt_state"]["g"])) == {1}
  helpers.assert_same_state(state["opt_state"]["e"], new["opt_state"]["e"])
  assert helpers.all_changed(state["params"]["g"], new["params"]["g"])
  # A bias after the critic's last norm (the last block's conv2 and shortcut, the output)
  # adds the same constant to D of every input: it cancels in mean D(fake) - mean D(real)
  # and the penalty does not see it, a zero gradient. Every other critic parameter moves.
  last = f"res{len(new['params']['d']['stack']) - 1}"
  constant = {("stack", last, "conv2", "bias"), ("stack", last, "shortcut", "bias"),
              ("output", "bias")}
  old_leaves = dict(jax.tree_util.tree_leaves_with_path(state["params"]["d"]))
  for path, leaf in jax.tree_util.tree_leaves_with_path(new["params"]["d"]):
    names = tuple(p.key for p in path)
    if names in constant:
      np.testing.assert_array_equal(leaf, old_leaves[path], err_msg=str(names))
    else:
      assert np.any(np.asarray(leaf) != np.asarray(old_leaves[path])), names
  helpers.assert_same_state(state["params"]["e"], new["params"]["e"])
  helpers.assert_same_state(state["batch_stats"]["e"], new["batch_stats"]["e"])
  assert np.isfinite(float(metrics["gp"])) and float(metrics["e_loss"]) == 0.0


@pytest.mark.parametrize("loss", ["izi_f", "izi", "ziz"])
def test_encoder_stage_leaves_the_generator_and_the_critic_unchanged(fanogan, loss):
  config, m, train_step, state, x = fanogan
  if loss != "izi_f":
    train_step = jax.jit(methods.make(_tiny(**{"fanogan.encoder_loss": loss}), IMAGE).train_step)
  at_boundary = dict(state, step=jnp.asarray(config.fanogan.gan_steps, jnp.int32))
  new, metrics = train_step(at_boundary, x, jax.random.key(1))
  assert float(metrics["stage"]) == 1.0 and float(metrics["d_loss"]) == 0.0
  for part in ("params", "batch_stats", "opt_state"):
    helpers.assert_same_state(at_boundary[part]["g"], new[part]["g"])
    helpers.assert_same_state(at_boundary[part]["d"], new[part]["d"])
  assert helpers.all_changed(state["params"]["e"], new["params"]["e"])
  assert helpers.all_changed(state["opt_state"]["e"], new["opt_state"]["e"])  # RMSProp's.
  if loss == "izi_f":
    assert float(metrics["e_loss"]) == pytest.approx(
        float(metrics["e_image"] + metrics["e_feature"]), rel=1e-6)  # kappa 1.
  elif loss == "izi":
    assert float(metrics["e_feature"]) == 0.0
    assert float(metrics["e_loss"]) == float(metrics["e_image"])


def test_izi_f_score_equals_its_formula(fanogan):
  config, m, _, state, x = fanogan
  state = dict(state, hparams=dict(state["hparams"], kappa=jnp.asarray(2.5, jnp.float32)))
  out = helpers.assert_batch_independent(jax.jit(m.score), state, x[:8],
                                         ("score", "score_image", "score_feature"))
  # By hand from the nets: E, G in eval mode, f = the critic's flattened last block.
  from ganad_jax.models import fanogan as nets
  dim, nz = config.fanogan.dim, config.model.nz
  variables = lambda k: {"params": state["params"][k], "batch_stats": state["batch_stats"][k]}
  z, _ = nets.Encoder(nz, dim).apply(variables("e"), x[:8], train=False)
  recon = nets.Generator(16, 1, dim).apply(variables("g"), z, train=False)
  f = lambda v: nets.Critic(dim).apply({"params": state["params"]["d"]}, v, train=False)[1][
      "penultimate"]
  image = np.mean((x[:8] - np.asarray(recon))**2, axis=(1, 2, 3))
  feature = np.mean((np.asarray(f(x[:8])) - np.asarray(f(recon)))**2, axis=1)
  np.testing.assert_allclose(out["score_image"], image, rtol=1e-4, atol=1e-7)
  np.testing.assert_allclose(out["score_feature"], feature, rtol=1e-4, atol=1e-7)
  np.testing.assert_allclose(out["score"], image + 2.5 * feature, rtol=1e-4, atol=1e-7)
  np.testing.assert_allclose(out["map"], ((x[:8] - np.asarray(recon))**2).mean(-1), rtol=1e-4,
                             atol=1e-7)
  assert np.all(np.abs(np.asarray(z)) <= 1.0)  # The paper's tanh encoder.


def test_a_run_killed_right_after_the_stage_boundary_resumes_to_the_same_state(tmp_path):
  config = _tiny()  # GAN steps 0-2, encoder steps 3-5, checkpoints at 3 and 6.
  splits = data.load(config.data, config.seed)
  full_dir, killed_dir = str(tmp_path / "full"), str(tmp_path / "killed")
  full = train.train(config, full_dir, splits).state
  # What a kill right after the boundary's checkpoint leaves: checkpoint 3 only.
  shutil.copytree(full_dir, killed_dir)
  shutil.rmtree(os.path.join(killed_dir, "checkpoints", "6"))
  assert helpers.checkpoint_steps(killed_dir) == [3]
  _, at_boundary = helpers.restore(killed_dir)
  assert int(at_boundary["step"]) == 3
  _, resumed, info, _ = train.train(config, killed_dir, splits)
  assert info["steps"] == 6
  assert checkpoints.digest(resumed) == checkpoints.digest(full)
  # After the boundary only the encoder moved.
  helpers.assert_same_state(at_boundary["params"]["g"], resumed["params"]["g"])
  helpers.assert_same_state(at_boundary["params"]["d"], resumed["params"]["d"])
  assert helpers.all_changed(at_boundary["params"]["e"], resumed["params"]["e"])


def test_anogan_with_wgan_gp_trains_a_layernorm_critic_n_critic_times():
  config = helpers.tiny_config("anogan", **{"anogan.gan_loss": "wgan_gp", "anogan.n_critic": 4,
                                            "anogan.search.steps": 2})
  configs.validate(config)
  m = methods.make(config, IMAGE)
  x = helpers.batch(IMAGE, n=16)
  state = jax.jit(m.init)(jax.random.key(0), x)
  assert state["batch_stats"]["d"] == {}  # LayerNorm: no batch statistics.
  assert "ln1" in state["params"]["d"]["encoder"]
  new, metrics = jax.jit(m.train_step)(state, x, jax.random.key(1))
  assert set(_counts(new["opt_state"]["d"])) == {4} and set(_counts(new["opt_state"]["g"])) == {1}
  for name in ("loss", "g_loss", "d_loss", "gp", "wasserstein"):
    assert np.isfinite(float(metrics[name])), name


@pytest.mark.parametrize("overrides,message", [
    ({"fanogan.encoder_loss": "izif"}, r"fanogan.encoder_loss='izif' must be one of izi, ziz"),
    ({"fanogan.gan_steps": 4}, r"train.num_steps=6 must equal fanogan.gan_steps \+ "
                               r"fanogan.encoder_steps = 7"),
    ({"fanogan.n_critic": 5}, r"train.batch_size=16 must be a multiple of fanogan.n_critic=5"),
    ({"fanogan.gp_weight": -1.0}, r"fanogan.gp_weight=-1.0 must be a finite number >= 0"),
])
def test_bad_fanogan_fields_are_refused_by_name(overrides, message):
  config = helpers.tiny_config("fanogan", **overrides)
  with pytest.raises(ValueError, match=message):
    configs.validate(config)
    methods.make(config, IMAGE)


def test_fanogan_refuses_vectors_and_anogan_wgan_gp_refuses_feature_matching():
  with pytest.raises(ValueError, match=r"f-AnoGAN needs images \(H, W, C\); got inputs of "
                                       r"shape \(10,\)"):
    methods.make(_tiny(), (10,))
  config = helpers.tiny_config("anogan", **{"anogan.gan_loss": "wgan_gp",
                                            "anogan.n_critic": 2,
                                            "anogan.feature_matching": True})
  with pytest.raises(ValueError, match=r"anogan.feature_matching is for gan_loss 'bce'"):
    methods.make(config, IMAGE)


def test_critic_loss_and_its_gradient_are_the_same_under_the_cpu_conv_lowering():
  """The penalty differentiates the critic twice; `config.conv_lowering` must not change it."""
  from ganad_jax.models import fanogan as nets
  from ganad_jax.xla_cpu import fast_conv
  critic = nets.Critic(2)
  real, fake = helpers.batch(IMAGE, n=4), helpers.batch(IMAGE, n=4, seed=1)
  params = critic.init(jax.random.key(0), real[:1], train=False)["params"]
  critic_fn = lambda p, x: critic.apply({"params": p}, x, train=True)[0]

  def loss_and_grad(p):
    return jax.value_and_grad(lambda p: wgan_gp.critic_loss(critic_fn, p, real, fake,
                                                            jax.random.key(1), 10.0)[0])(p)

  plain = jax.jit(loss_and_grad)(params)
  lowered = jax.jit(fast_conv.lowered(loss_and_grad))(params)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               plain, lowered)
