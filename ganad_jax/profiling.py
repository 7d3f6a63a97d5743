"""What the benchmarks compare against: XLA's FLOP counts and the machine's matmul peak."""

import time

import jax
import jax.numpy as jnp
import numpy as np


def compiled_flops(fn, *args) -> float:
  """FLOPs of one call of `fn(*args)` by XLA's cost analysis of the compiled program."""
  cost = jax.jit(fn).lower(*args).compile().cost_analysis()
  if isinstance(cost, (list, tuple)):  # Older jax returned one dict per device.
    cost = cost[0]
  return float(cost["flops"])


def matmul_peak(size: int = 2048, repeats: int = 10) -> dict:
  """Best measured GFLOP/s of a jitted fp32 (size x size) @ (size x size) matmul."""
  a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
  b = jax.random.normal(jax.random.key(1), (size, size), jnp.float32)
  matmul = jax.jit(jnp.dot)
  matmul(a, b).block_until_ready()
  best = np.inf
  for _ in range(repeats):
    start = time.perf_counter()
    matmul(a, b).block_until_ready()
    best = min(best, time.perf_counter() - start)
  return {"size": size, "seconds": best, "gflops": 2.0 * size**3 / best / 1e9}
