r"""A tiny config for tests and smoke runs (seconds on a CPU): any method, digits.

  python experiments/train.py --config=configs/test.py:method=ssim_ae --workdir=/tmp/smoke
"""

from ganad_jax import configs


def get_config(arg: str | None = None):
  args = configs.parse_arg(arg, method="ae")
  config = configs.base_config(args.method)
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
  for name, value in _TINY.get(args.method, {}).items():
    configs.set_field(config, name, value, "configs/test.py:")
  return config


# The smallest settings of the methods' own sections (a config holds its method's only).
_TINY = {
    "ssim_ae": {"ssim.window": 7},
    "csflow": {"csflow.hidden": 8, "csflow.kernels": (3,), "pretrained.input_size": 128},
    "differnet": {"differnet.hidden": 8, "differnet.blocks": 2, "differnet.n_views": 2,
                  "differnet.n_transforms": 2, "pretrained.input_size": 128},
    "egbad": {"egbad.g_widths": (8,), "egbad.e_widths": (8,), "egbad.d_widths": (8,),
              "egbad.d_z_features": 8, "egbad.d_joint_features": 8},
    "vae": {"vae.num_score_samples": 4},
    "fastflow": {"fastflow.flow_steps": 2},
    "cflow": {"cflow.coupling_blocks": 2, "cflow.condition_vec": 8, "cflow.fiber_batch": 16,
              "cflow.fiber_steps": 2},
    "msflow": {"msflow.parallel_blocks": (1, 1, 1), "msflow.c_conds": (8, 8, 8)},
    # The GAN for steps 0-2, the encoder for 3-5: checkpoint 3 is the stage boundary.
    "fanogan": {"fanogan.dim": 2, "fanogan.gan_steps": 3, "fanogan.encoder_steps": 3,
                "fanogan.n_critic": 2},
}
