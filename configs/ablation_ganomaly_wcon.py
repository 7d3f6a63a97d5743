r"""Ablation: GANomaly's w_con in {1, 10, 50, 100} x 3 seeds on digits, in one program.

  python experiments/train.py --config=configs/ablation_ganomaly_wcon.py \
      --workdir=/tmp/ablation_ganomaly_wcon

configs/ganomaly_digits.py (anomalous digit 0, 16x16, nz 100, 32 base
features, 15 epochs) as a 12-member ensemble: seeds 0, 1, 2 x w_con 1, 10, 50,
100, trained by one vmapped step and scored by one vmapped score. Writes
WORKDIR/results.md / results.json: a row per w_con, AUROC / AUPRC / F1-max of
"score" (latent distance) and the AUROC of "score_recon", mean ± std over the
seeds. Every member uses the data split of config.seed (0); the seeds vary the
initialisation, batch order and noise. Re-running the command resumes.

Argument (`configs.parse_arg`): digit=D sets the anomalous class (default 0);
smoke=true shrinks everything to a seconds-long check (8 steps, tiny nets):

  python experiments/train.py --config=configs/ablation_ganomaly_wcon.py:digit=3,smoke=true \
      --workdir=/tmp/ablation_smoke

Measured (2-core CPU shared with other jobs, 8 min 28 s for the whole command):
AUROC of "score", mean ± std over seeds, for w_con 1 / 10 / 50 / 100:
0.979 ± 0.005 / 0.984 ± 0.008 / 0.971 ± 0.017 / 0.971 ± 0.016.
"""

from ganad_jax import configs

W_CON = (1.0, 10.0, 50.0, 100.0)
SEEDS = (0, 1, 2)


def get_config(arg: str | None = None):
  args = configs.parse_arg(arg, digit=0, smoke=False)
  config = configs.sibling_config(__file__, "ganomaly_digits", f"digit={args.digit}")
  config.ensemble.seeds = SEEDS
  config.ensemble.grid = (("ganomaly.w_con", W_CON),)
  if args.smoke:
    config.data.max_per_class = 20
    config.model.nz = 4
    config.model.base_features = 4
    config.train.batch_size = 16
    config.train.num_steps = 8
    config.train.log_every = 4
    config.train.checkpoint_every = 4
    config.eval.batch_size = 64
    config.train.image_grid_size = 4
  return config
