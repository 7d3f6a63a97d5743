r"""EGBAD's encoder-inversion curve: is G(E(x)) closer to x than G(z) for a random z?

  PYTHONPATH=$PWD python experiments/egbad_inversion.py --config=configs/egbad_digits.py \
      --workdir=/tmp/egbad_inv --json_out=/tmp/egbad_inv.json --plot_out=/tmp/egbad_inv.png \
      --every=50

Trains EGBAD from `--config` (its data, nets, optimiser and `train.num_steps` /
`num_epochs` budget; the step is `runner.make_train_step`'s, as in
experiments/train.py) and every `--every` steps measures, with the EMA weights
that `score` uses and with the live weights:

  enc    = mean |x - G(E(x))|          (the encoder's reconstruction)
  random = mean |x_i - G(z_i)|, z ~ N(0, I) fixed   (the prior's baseline)
  swap   = mean |x_i - G(E(x_j))|, j = i + 1 mod n  (another image's code)

per pixel, on `--num_images` fixed training normals and on the test normals and
anomalies. An encoder that inverts G gives enc < swap <= random; enc ~ random
means E(x) carries no information about x and the EGBAD score cannot work.
The test AUROC of `score` is logged beside them as an observation only: no
choice (step, setting) is made with it. `--workdir` receives the config.
"""

import json
import os
import time

from absl import flags
from absl import logging
import jax
import jax.numpy as jnp
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
from ml_collections import config_flags
import numpy as np

from ganad_jax import cli
from ganad_jax import data
from ganad_jax import methods
from ganad_jax import metrics as metrics_lib
from ganad_jax import run_outputs
from ganad_jax import runner
from ganad_jax import train as train_lib

_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for config.json.")
_JSON_OUT = flags.DEFINE_string("json_out", None, "Where the curve goes (JSON).")
_PLOT_OUT = flags.DEFINE_string("plot_out", None, "Where the plot goes (PNG).")
_EVERY = flags.DEFINE_integer("every", 50, "Steps between measurements (and at step 0 and the end).")
_NUM_IMAGES = flags.DEFINE_integer("num_images", 256, "Images per measured set (the first ones).")
config_flags.DEFINE_config_file("config", None, "EGBAD config file (configs/egbad_*.py).",
                                lock_config=True)
flags.mark_flags_as_required(["config", "workdir", "json_out", "plot_out"])


def _distances(method, state, x, z, key):
  """{"enc", "swap", "random"}: mean per-pixel |x - .| of G(E(x)), G(E(x_next)) and G(z)."""
  recon = method.score(state, x, key)["recon"]
  fake = method.generate(state, z)
  mean = lambda a: jnp.abs(a).mean()
  return {"enc": mean(x - recon), "swap": mean(x - jnp.roll(recon, 1, axis=0)),
          "random": mean(x - fake)}


def measure_inversion(config, splits, every: int, num_images: int, on_record=None) -> dict:
  """Trains EGBAD on `splits.train` and measures the inversion every `every` steps.

  Args:
    config: an EGBAD config (method "egbad").
    splits: `data.load(config.data, config.seed)`.
    every: steps between measurements (> 0).
    num_images: images per measured set (the first ones of each).
    on_record: called with the curve after every measurement (to save a
      partial curve of a run that may be stopped).

  Returns:
    {"steps": [...], "<weights>/<set>/<distance>": [...] for weights "ema" /
    "live", sets "train" / "test_normal" / "test_anomaly", distances "enc" /
    "swap" / "random"; "test_auroc" (EMA `score`, logged only), "d_loss",
    "g_loss", "e_loss", "d_real", "d_fake" (the train step's), "seconds"}.

  Raises:
    ValueError: the config's method is not EGBAD, or `every` < 1.
  """
  if config.method != "egbad":
    raise ValueError(f"config.method must be 'egbad'; got {config.method!r}.")
  if every < 1:
    raise ValueError(f"--every must be >= 1; got {every}.")
  x_train = splits.train.x
  total = train_lib.num_train_steps(config, len(x_train))
  method = methods.make(config, x_train.shape[1:])
  keys = runner.root_keys(config.seed)
  batch_size = int(config.train.batch_size)
  state = jax.jit(method.init)(keys.init, jnp.asarray(x_train[:batch_size]))
  step_fn = jax.jit(runner.make_train_step(method, batch_size), donate_argnums=0)
  train_x = jnp.asarray(x_train)
  test = splits.test
  sets = {"train": x_train[:num_images], "test_normal": test.x[test.y == 0][:num_images],
          "test_anomaly": test.x[test.y == 1][:num_images]}
  nz = int(config.model.nz)
  z = jax.random.normal(jax.random.key(12345), (num_images, nz), jnp.float32)
  distances = jax.jit(lambda state, x, z: _distances(method, state, x, z, keys.score))
  score = jax.jit(lambda state, x: method.score(state, x, keys.score)["score"])

  curve = {"steps": [], "test_auroc": [], "seconds": []}
  t0 = time.perf_counter()
  last = {}

  def record(step):
    curve["steps"].append(step)
    for weights, s in (("ema", state), ("live", dict(state, ema=state["params"]))):
      for name, x in sets.items():
        for k, v in distances(s, jnp.asarray(x), z[:len(x)]).items():
          curve.setdefault(f"{weights}/{name}/{k}", []).append(float(v))
    scores = np.concatenate([np.asarray(score(state, jnp.asarray(b)))
                             for b in np.array_split(test.x, max(1, len(test.x) // 256))])
    curve["test_auroc"].append(metrics_lib.auroc(test.y, scores))
    for k in ("d_loss", "g_loss", "e_loss", "d_real", "d_fake"):
      curve.setdefault(k, []).append(float(last[k]) if k in last else float("nan"))
    curve["seconds"].append(time.perf_counter() - t0)
    logging.info("step %d/%d: train enc %.4f swap %.4f random %.4f | live enc %.4f random %.4f"
                 " | test AUROC %.3f (logged only)", step, total,
                 curve["ema/train/enc"][-1], curve["ema/train/swap"][-1],
                 curve["ema/train/random"][-1], curve["live/train/enc"][-1],
                 curve["live/train/random"][-1], curve["test_auroc"][-1])
    if on_record is not None:
      on_record(curve)

  record(0)
  for step in range(1, total + 1):
    state, last = step_fn(state, train_x, keys.data, keys.step)
    if step % every == 0 or step == total:
      last = jax.device_get(last)
      if not all(np.isfinite(v) for v in last.values()):
        raise FloatingPointError(f"Non-finite EGBAD losses at step {step}: {last}.")
      record(step)
  return curve


def plot(curve: dict, title: str, path: str) -> None:
  """Writes the train-normal (EMA and live) and test distances against the step as a PNG."""
  fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
  steps = curve["steps"]
  for ax, (weights, name) in zip(axes, (("ema", "train"), ("live", "train"), ("ema", "test"))):
    if name == "train":
      for k, style in (("enc", "-"), ("swap", "--"), ("random", ":")):
        ax.plot(steps, curve[f"{weights}/train/{k}"], style, label=k)
      ax.set_title(f"training normals, {weights} weights")
    else:
      for s, color in (("test_normal", "tab:blue"), ("test_anomaly", "tab:red")):
        ax.plot(steps, curve[f"ema/{s}/enc"], "-", color=color, label=f"{s} enc")
        ax.plot(steps, curve[f"ema/{s}/random"], ":", color=color, label=f"{s} random")
      ax2 = ax.twinx()
      ax2.plot(steps, curve["test_auroc"], color="gray", lw=0.8)
      ax2.set_ylabel("test AUROC (logged only)", color="gray")
      ax.set_title("test, EMA weights")
    ax.set_xlabel("step")
    ax.set_ylabel("mean |x - .| per pixel")
    ax.legend(fontsize=7)
  fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=70)
  plt.close(fig)


def main(argv):
  del argv
  config = flags.FLAGS.config
  train_lib.prepare_workdir(_WORKDIR.value)
  run_outputs.write_json(os.path.join(_WORKDIR.value, "config.json"), config.to_dict())
  splits = data.load(config.data, config.seed)
  total = train_lib.num_train_steps(config, len(splits.train.x))

  def save(curve):  # After every measurement: a stopped run leaves its curve so far.
    with open(_JSON_OUT.value, "w", encoding="utf-8") as f:
      json.dump(dict(curve, total_steps=total, config=config.to_dict(), data=splits.info), f,
                indent=1, default=str)
    plot(curve, f"EGBAD inversion: {os.path.basename(_JSON_OUT.value)}, class "
         f"{config.data.class_index}, seed {config.seed}, step {curve['steps'][-1]} of {total}",
         _PLOT_OUT.value)

  measure_inversion(config, splits, _EVERY.value, _NUM_IMAGES.value, on_record=save)


if __name__ == "__main__":
  cli.run_main(main)
