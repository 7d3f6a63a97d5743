"""The `mesh` section of the config: the devices and the ("members", "data") mesh axes."""

import ml_collections


def mesh_config() -> ml_collections.ConfigDict:
  """Returns the `mesh` section (read by `ganad_jax.sharding`).

  Fields:
    devices: devices in the mesh; 0 = auto: every device on GPU / TPU and in
      multi-process runs, one on a single-process CPU (XLA's CPU "devices"
      share the same cores, so splitting a step over them only adds work).
    members: size of the "members" axis; 0 = auto: the largest divisor of
      `devices` that divides the number of ensemble members (1 across hosts).
      The rest of the devices form the "data" axis, which must divide the
      training and evaluation batch sizes.
    train_data: 'replicated' (every device holds the training set) or
      'sharded' (its rows are split over the "data" axis; each host places
      only its own rows). Batches are gathered on the devices either way.
  """
  config = ml_collections.ConfigDict()
  config.devices = 0
  config.members = 0
  config.train_data = "replicated"
  return config
