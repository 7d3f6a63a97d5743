"""The config of f-AnoGAN (`methods/fanogan.py`): the `fanogan` section."""

import ml_collections

from ganad_jax.configs.methods import spec

ENCODER_LOSSES = ("izi", "ziz", "izi_f")


def fanogan_config() -> ml_collections.ConfigDict:
  """Returns the `fanogan` section (defaults: tSchlegl/f-AnoGAN's, but the step counts).

  The GAN's Adam is `config.optim` (the reference's: lr 1e-4, b1 0, b2 0.9;
  the shared defaults differ, so configs/fanogan_*.py set them), its batch
  `train.batch_size` = n_critic x the reference's 64 (each critic step takes
  its own slice). `train.num_steps` must equal gan_steps + encoder_steps.

  Fields:
    dim: base width of the ResNet generator, critic and encoder (64).
    gan_steps: WGAN-GP generator steps (each with n_critic critic steps),
      the first stage; the reference trains 7 epochs.
    encoder_steps: encoder steps with G and the critic frozen, the second
      stage (the reference: 50,000).
    n_critic: critic steps per generator step (5).
    gp_weight: weight of the gradient penalty (10).
    encoder_loss: 'izi' MSE(x, G(E(x))) | 'ziz' MSE(z, E(G(z))) | 'izi_f'
      izi + kappa MSE(f(x), f(G(E(x)))), f the critic's last conv features.
    kappa: weight of the feature term, in training (izi_f) and in the score (1).
    encoder_lr: RMSProp learning rate of the encoder (5e-5; TF1's RMSProp:
      decay 0.9, eps 1e-10 inside the root, accumulator started at 1).
    encoder_tanh: z = tanh(E's last linear) (the paper's 'tanh_fc').
  """
  config = ml_collections.ConfigDict()
  config.dim = 64
  config.gan_steps = 1000
  config.encoder_steps = 1000
  config.n_critic = 5
  config.gp_weight = 10.0
  config.encoder_loss = "izi_f"
  config.kappa = 1.0
  config.encoder_lr = 5e-5
  config.encoder_tanh = True
  return config


def check(config: ml_collections.ConfigDict) -> None:
  """ValueError naming the field: unknown encoder_loss, bad counts or weights.

  The run's length (train.num_steps = gan_steps + encoder_steps) is checked
  when the method is built (`methods.fanogan.check_config`), so that
  `base_config("fanogan")` with the shared train defaults stays valid.
  """
  cfg = config.fanogan
  spec.require(cfg.encoder_loss in ENCODER_LOSSES, "fanogan.encoder_loss", cfg.encoder_loss,
               f"must be one of {', '.join(ENCODER_LOSSES)}")
  for name in ("dim", "gan_steps", "encoder_steps"):
    spec.require(int(cfg[name]) == cfg[name] and cfg[name] >= 1, f"fanogan.{name}", cfg[name],
                 "must be an integer >= 1")
  for name in ("kappa", "encoder_lr"):
    spec.require(float(cfg[name]) >= 0.0, f"fanogan.{name}", cfg[name], "must be >= 0")


METHODS = {"fanogan": spec.Spec(sections={"fanogan": fanogan_config}, check=check)}
