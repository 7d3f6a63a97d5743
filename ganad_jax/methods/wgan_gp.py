"""WGAN-GP (Gulrajani et al. 2017) as a GAN loss any generator method can use.

Followed: igul222/improved_wgan_training as f-AnoGAN ships it
(tSchlegl/f-AnoGAN wgangp_64x64.py):
    critic: mean D(G(z)) - mean D(x) + gp_weight * mean_i (||grad_x^ D(x^_i)||_2 - 1)^2,
            x^_i = x_i + alpha_i (G(z_i) - x_i), alpha_i ~ U[0, 1) per sample;
    generator: -mean D(G(z)).
The critic must not normalise over the batch (the penalty is per sample):
f-AnoGAN's critic uses LayerNorm, `dcgan.Discriminator(norm="layer")` is
AnoGAN's. `n_critic` critic steps per generator step run inside one jitted
train step (`critic_steps`, a `lax.scan`), each on its own slice of the
step's batch (`critic_batches`): the reference draws a fresh real batch for
every critic iteration, so a train batch of n_critic x b rows feeds n_critic
critic steps of b rows each, and the generator step uses b samples.

Users: `methods.fanogan` and `methods.anogan` (`anogan.gan_loss="wgan_gp"`).
"""

import math
from typing import Callable

import jax
import jax.numpy as jnp

from ganad_jax.methods import base

# critic_fn(params, x (b, ...)) -> logits (b,) float32: no BatchNorm, so no statistics.
CriticFn = Callable[[object, jax.Array], jax.Array]


def check(n_critic, gp_weight, batch_size: int, prefix: str) -> None:
  """ValueError naming the field unless n_critic >= 1, gp_weight >= 0 and n_critic divides the batch.

  Args:
    n_critic, gp_weight: the config values; `prefix` their section ("fanogan").
    batch_size: `config.train.batch_size`.
  """
  if int(n_critic) != n_critic or n_critic < 1:
    raise ValueError(f"{prefix}.n_critic={n_critic!r} must be an integer >= 1.")
  if not math.isfinite(float(gp_weight)) or gp_weight < 0:
    raise ValueError(f"{prefix}.gp_weight={gp_weight!r} must be a finite number >= 0.")
  if batch_size % int(n_critic):
    raise ValueError(
        f"train.batch_size={batch_size} must be a multiple of {prefix}.n_critic={n_critic}: "
        f"each of the {n_critic} critic steps of a train step takes its own "
        f"batch_size / n_critic rows (e.g. batch_size {64 * int(n_critic)} for the "
        f"reference's 64).")


def critic_batches(batch: jax.Array, n_critic: int) -> jax.Array:
  """(n_critic, B / n_critic, ...): the batch cut into one slice per critic step."""
  return batch.reshape((n_critic, batch.shape[0] // n_critic) + batch.shape[1:])


def gradient_penalty(critic_fn: CriticFn, params, real: jax.Array, fake: jax.Array,
                     key: jax.Array) -> jax.Array:
  """mean_i (||d D(x^_i) / d x^_i||_2 - 1)^2 over random interpolates x^ of real and fake.

  Args:
    critic_fn: see `CriticFn`.
    params: the critic's parameters (the penalty is differentiable in them).
    real, fake: (b, ...) float32, the same shape.
    key: draws alpha (b, 1, ..., 1) ~ U[0, 1).

  Returns:
    The unweighted penalty, a float32 scalar.
  """
  alpha = jax.random.uniform(key, (real.shape[0],) + (1,) * (real.ndim - 1), jnp.float32)
  interpolates = real + alpha * (fake - real)
  grads = jax.grad(lambda x: critic_fn(params, x).sum())(interpolates)
  slopes = jnp.sqrt(jnp.sum(jnp.square(grads.reshape(grads.shape[0], -1)), axis=1))
  return jnp.mean(jnp.square(slopes - 1.0))


def critic_loss(critic_fn: CriticFn, params, real: jax.Array, fake: jax.Array,
                key: jax.Array, gp_weight) -> tuple[jax.Array, dict[str, jax.Array]]:
  """(mean D(fake) - mean D(real) + gp_weight * penalty, metrics "wasserstein" and "gp")."""
  real_logits = critic_fn(params, real)
  fake_logits = critic_fn(params, fake)
  penalty = gradient_penalty(critic_fn, params, real, fake, key)
  wasserstein = real_logits.mean() - fake_logits.mean()
  return -wasserstein + gp_weight * penalty, {"wasserstein": wasserstein, "gp": penalty}


def generator_loss(fake_logits: jax.Array) -> jax.Array:
  """-mean D(G(z))."""
  return -fake_logits.astype(jnp.float32).mean()


def critic_steps(critic_fn: CriticFn, make_fake: Callable[[jax.Array, int], jax.Array], tx,
                 params, opt_state, real_batches: jax.Array, key: jax.Array, gp_weight):
  """n_critic Adam steps of the critic in a `lax.scan`, one per slice of `real_batches`.

  Args:
    critic_fn: see `CriticFn`.
    make_fake: (key, b) -> b generated samples, gradients stopped (a fresh z per step).
    tx, params, opt_state: the critic's optimiser, parameters and optimiser state.
    real_batches: (n_critic, b, ...) (`critic_batches`).
    key: split into one key per critic step (z and alpha).
    gp_weight: the penalty's weight (a float32 scalar or float).

  Returns:
    (params, opt_state, metrics): metrics of the last critic step, as the
    reference logs them: "d_loss", "wasserstein" (mean D(x) - mean D(G(z))), "gp".
  """
  def one_step(carry, inputs):
    params, opt_state = carry
    real, step_key = inputs
    z_key, alpha_key = jax.random.split(step_key)
    fake = jax.lax.stop_gradient(make_fake(z_key, real.shape[0]))
    (loss, metrics), grads = jax.value_and_grad(critic_loss, argnums=1, has_aux=True)(
        critic_fn, params, real, fake, alpha_key, gp_weight)
    params, opt_state = base.adam_update(tx, grads, opt_state, params)
    return (params, opt_state), {"d_loss": loss, **metrics}

  keys = jax.random.split(key, real_batches.shape[0])
  (params, opt_state), metrics = jax.lax.scan(one_step, (params, opt_state),
                                              (real_batches, keys))
  return params, opt_state, jax.tree_util.tree_map(lambda m: m[-1], metrics)
