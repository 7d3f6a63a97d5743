"""Flax linen networks. Modules here are networks only; training logic lives in ganad_jax.methods."""
