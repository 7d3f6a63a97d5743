"""Normalizing-flow building blocks (Flax linen modules with exact log-determinants)."""
