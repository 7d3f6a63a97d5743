"""The `ensemble` section of the config: seeds x a grid in one vmapped program."""

import ml_collections


def ensemble_config() -> ml_collections.ConfigDict:
  """Returns the `ensemble` section (both empty: a single run with `config.seed`).

  Read by `ganad_jax.ensemble`.

  Fields:
    seeds: the members' seeds; () = (config.seed,) when a grid is given.
    grid: (field, values) pairs, e.g. (("ganomaly.w_con", (1.0, 10.0)),
      ("optim.lr", (1e-4, 2e-4))): every combination of values is a grid
      point, trained with every seed.
    batching: "auto", "vmap" or "unroll": how one program maps its members.
  """
  config = ml_collections.ConfigDict()
  config.seeds = ()
  config.grid = ()
  config.batching = "auto"
  return config
