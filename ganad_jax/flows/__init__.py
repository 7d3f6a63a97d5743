"""Normalizing-flow building blocks (Flax linen modules and pure functions).

  coupling.py    FrEIA's AllInOneBlock (soft-clamped affine coupling, softplus
                 global affine, fixed random permutation, optional condition),
                 its subnets, and `Flow`, a sequence of such blocks.
  fusion.py      MSFlow's fusion coupling across scales.
  likelihood.py  standard-normal log-likelihoods and flow NLLs, in nats.
  spatial.py     2-D sinusoidal positional encodings, align-corners bilinear
                 resizing, adaptive average pooling.
  glow.py        DifferNet's GLOW coupling (atan soft clamp, two subnets),
                 its fixed permutations and flow of fully connected couplings.
  cross_scale.py CS-Flow's cross-scale convolutions and parallel coupling
                 over 3 scales.

Every module returns (output, log|det J|) with the exact log-determinant; the
inverse (`reverse=True`) returns the negated one. Arrays are channels-last:
(N, C) vectors or (N, H, W, C) maps.
"""
