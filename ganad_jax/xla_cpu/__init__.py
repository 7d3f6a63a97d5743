"""Workarounds for XLA:CPU's slow paths; not models and not methods.

`fast_conv`: flax convolutions rewritten into the forms whose values and
gradients XLA:CPU computes fastest (inside the latent search's loop, and for
every train step and score under `config.conv_lowering`).
"""
