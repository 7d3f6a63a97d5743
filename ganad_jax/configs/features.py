"""The `features` section: how a method with frozen features (`Method.embed`) gets them in training."""

import ml_collections


def features_config() -> ml_collections.ConfigDict:
  """Returns the `features` section (registered by the methods that define `embed`).

  Fields:
    once: True: `embed` runs once over the training split and the train step
      draws its batches from those features, kept on the device; False: it
      runs inside the jitted step on every batch (what the patch protocol and
      ensembles always do). Both give the same features; the float order of
      the fused program may differ.
    max_memory_mb: the training split's features over this are refused
      before any is computed (with `once`), naming their size.
  """
  config = ml_collections.ConfigDict()
  config.once = True
  config.max_memory_mb = 4096
  return config
