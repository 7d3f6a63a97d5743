"""The `optim`, `train` and `eval` sections of the config: optimiser, loop and scoring."""

import ml_collections


def optim_config() -> ml_collections.ConfigDict:
  """Returns the `optim` section: Adam's learning rate and moment decays (GANomaly's)."""
  config = ml_collections.ConfigDict()
  config.lr = 2e-4
  config.b1 = 0.5
  config.b2 = 0.999
  return config


def train_config() -> ml_collections.ConfigDict:
  """Returns the `train` section with every field at its default.

  Fields:
    batch_size: training batch.
    num_epochs: the run's length in epochs of the training split.
    num_steps: > 0 overrides num_epochs.
    log_every: steps between logs and finiteness checks.
    checkpoint_every: steps between checkpoints (and at the end).
    max_checkpoints: checkpoints kept.
    image_grid_size: test images in the TensorBoard grids.
    early_stopping: model selection on validation normals only (never test
      labels): every `eval_every` steps (0 = off, fixed budget), keep the
      state with the lowest mean `score` output on the validation split; stop
      after `patience` evaluations without an improvement larger than
      `min_delta`.
  """
  config = ml_collections.ConfigDict()
  config.batch_size = 64
  config.num_epochs = 15.0
  config.num_steps = 0
  config.log_every = 50
  config.checkpoint_every = 500
  config.max_checkpoints = 2
  config.image_grid_size = 16
  config.early_stopping = ml_collections.ConfigDict()
  config.early_stopping.eval_every = 0
  config.early_stopping.patience = 5
  config.early_stopping.min_delta = 0.0
  config.early_stopping.score = "score"
  return config


def eval_config() -> ml_collections.ConfigDict:
  """Returns the `eval` section.

  Fields:
    batch_size: scoring batch.
    threshold_quantile: the threshold is this quantile of the
      validation-normal scores.
    paper_repro: also evaluate as the GAN references do (`ganad_jax.paper_repro`:
      the test split after every epoch, their test-time BatchNorm, the best
      epoch chosen on test labels), reported apart from the honest metrics,
      which it does not change.
    paper_repro_test_order: the order of the test split in those batches:
      "reference" (the method's reference's, `methods.base.PaperScore`),
      "shuffled", or "sorted" (normals first).
  """
  config = ml_collections.ConfigDict()
  config.batch_size = 256
  config.threshold_quantile = 0.95
  config.paper_repro = False
  config.paper_repro_test_order = "reference"
  return config
