r"""A tiny config for tests and smoke runs (seconds on a CPU): any method, digits.

  python experiments/train.py --config=configs/test.py:method=ssim_ae --workdir=/tmp/smoke
"""

from ganad_jax import configs


def get_config(arg: str | None = None):
  args = configs.parse_arg(arg, method="ae")
  config = configs.base_config()
  config.method = args.method
  config.data.image_size = 16
  config.data.max_per_class = 20
  config.model.nz = 4
  config.model.base_features = 4
  config.model.mlp_widths = (8, 4)
  config.train.batch_size = 16
  config.train.num_steps = 6
  config.train.log_every = 2
  config.train.checkpoint_every = 3
  config.train.image_grid_size = 4
  config.eval.batch_size = 64
  config.ssim.window = 7
  config.egbad.g_widths, config.egbad.e_widths, config.egbad.d_widths = (8,), (8,), (8,)
  config.egbad.d_z_features, config.egbad.d_joint_features = 8, 8
  config.vae.num_score_samples = 4
  return config
