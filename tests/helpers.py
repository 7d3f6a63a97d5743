"""What several test files share: tiny configs and runs, data checks, method states, figure data.

Sections: runs of configs/test.py and what is read back from their workdirs;
ensemble configs; data configs and the invariants of every `Splits`; the tiny EGBAD / VAE /
Gaussian and GANomaly / Skip-GANomaly states of tests/methods; configs and
images for the pretrained backbones; stage-by-stage
comparisons of the backbones with PyTorch; scores and a masked split for the
figure and report tests. Fixtures (runs trained once a session, the random
backbone weights) are in tests/conftest.py; subprocesses in tests/harness.py.
"""

import functools
import importlib.util
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from ganad_jax import configs
from ganad_jax import methods
from ganad_jax import workdir as workdir_lib
from ganad_jax.data import splits as splits_lib
from configs import test as test_config

# ------------------------------------------------------------------- runs ---


def experiment_config(name: str, arg: str | None = None):
  """`get_config(arg)` of configs/<name>, validated, its method built for its input shape."""
  path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", name)
  spec = importlib.util.spec_from_file_location(name[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(arg) if arg is not None else module.get_config()
  configs.validate(config)
  methods.make(config, (config.data.image_size, config.data.image_size, config.data.channels))
  return config


SHAPE = (16, 16, 1)  # configs/test.py's images.
# The long run: checkpoints at 1 (Orbax saves the first step), 5, 10, 15, 20.
LONG_STEPS, LONG_EVERY = 20, 5
LONG_OVERRIDES = {"train.num_steps": LONG_STEPS, "train.checkpoint_every": LONG_EVERY}


def tiny_config(method="ae", **overrides):
  """configs/test.py (6 steps, checkpoints at 3 and 6) with `overrides` ("a.b": value)."""
  config = test_config.get_config(f"method={method}")
  config.update_from_flattened_dict(overrides)
  return config


def long_config(method="ae", **overrides):
  """configs/test.py with LONG_OVERRIDES and `overrides` ("section.field": value) applied."""
  config = test_config.get_config(f"method={method}")
  config.update_from_flattened_dict({**LONG_OVERRIDES, **overrides})
  return config


def restore(workdir):
  """(step, state) of the workdir's newest good checkpoint, for the config it was trained with."""
  trained = workdir_lib.restore(workdir, SHAPE)
  return trained.step, trained.state


def assert_same_state(a, b):
  jax.tree.map(np.testing.assert_array_equal, a, b)


def read_results(workdir):
  with open(os.path.join(workdir, "results.json"), encoding="utf-8") as f:
    return json.load(f)


def results_without_wall_time(workdir):
  results = read_results(workdir)
  del results["wall_time_s"]  # The only field that may differ between equal runs.
  return results


def checkpoint_steps(workdir):
  """Finalised checkpoint steps (Orbax's temporary directories excluded)."""
  names = os.listdir(os.path.join(workdir, "checkpoints"))
  return sorted(int(n) for n in names if n.isdigit())


def snapshot(workdir):
  """What a refused run must leave as it was: every file's bytes."""
  out = {}
  for root, _, files in os.walk(workdir):
    for name in files:
      path = os.path.join(root, name)
      with open(path, "rb") as f:
        out[os.path.relpath(path, workdir)] = f.read()
  return out


# ------------------------------------------------------------- ensembles ---

# The AE ensemble of `ae_ensemble_config` (tests/conftest.py's `ae_ensemble_run`).
ENSEMBLE_STEPS, ENSEMBLE_EVERY = 20, 5
ENSEMBLE_GRID = (("optim.lr", (0.05, 0.01)),)
# lr 0.05 makes the validation score rise again early, so member 0's patience
# runs out while other members go on.
ENSEMBLE_OVERRIDES = {"train.num_steps": ENSEMBLE_STEPS, "train.checkpoint_every": ENSEMBLE_EVERY,
                      "train.early_stopping.eval_every": 2, "train.early_stopping.patience": 1,
                      "ensemble.seeds": (0, 1), "ensemble.grid": ENSEMBLE_GRID}


def ensemble_run_config(method, steps=3, seeds=(), grid=(), **overrides):
  """configs/test.py for `method`, `steps` steps, ensemble `seeds` x `grid`, and `overrides`."""
  config = test_config.get_config(f"method={method}")
  config.train.num_steps = steps
  if "anogan" in config:  # AnoGAN's and EGBAD's latent search.
    config.anogan.search.steps = 3
  config.ensemble.seeds, config.ensemble.grid = seeds, grid
  config.update_from_flattened_dict(overrides)
  return config


def ae_ensemble_config(**overrides):
  """The AE ensemble: 2 seeds x 2 learning rates, ENSEMBLE_STEPS steps, early stopping."""
  return ensemble_run_config("ae", steps=ENSEMBLE_STEPS, **{**ENSEMBLE_OVERRIDES, **overrides})


# ------------------------------------------------------------------- data ---

SHARED_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared",
                           "data")


def data_config(**overrides):
  config = configs.data.data_config()
  for key, value in overrides.items():
    config[key] = value
  return config


def round_half(fraction, n):
  return int(np.floor(fraction * n + 0.5))


def check_splits(s, image_shape=None):
  """Checks the invariants every Splits must satisfy."""
  for split in (s.train, s.val, s.test):
    assert split.x.dtype == np.float32
    assert split.y.dtype == np.int32
    assert split.kinds.dtype.kind == 'U'
    assert len(split.x) == len(split.y) == len(split.kinds)
    assert set(np.unique(split.y)) <= {0, 1}
    if image_shape is not None:
      assert split.x.shape[1:] == image_shape
      assert split.x.min() >= -1.0 and split.x.max() <= 1.0
  assert not s.train.y.any() and not s.val.y.any()
  assert set(np.unique(s.test.y)) == {0, 1}
  json.dumps(s.info)  # JSON-serialisable.
  assert isinstance(s.info['notes'], list) and s.info['notes']
  assert s.info['sizes']['train'] == len(s.train.y)
  assert s.info['sizes']['val'] == len(s.val.y)
  assert s.info['sizes']['test'] == len(s.test.y)


def left_half(dtype=np.uint8, value=255, side=32):
  array = np.zeros((side, side), dtype)
  array[:, : side // 2] = value
  return array


def palette_mask(side=32):
  mask = Image.fromarray(left_half(value=1), 'L').convert('P')
  mask.putpalette([0, 0, 0, 0, 128, 0] + [0] * 762)
  return mask


# ------------------------------------------------ EGBAD, VAE and Gaussian ---

IMAGE = (16, 16, 1)
VECTOR = (10,)


def method_config(method, search_steps=0, **updates):
  config = test_config.get_config(f"method={method}")
  if method == "egbad":
    config.egbad.search_steps = search_steps
  for name, value in updates.items():
    section, field = name.split("__")
    config[section][field] = value
  configs.validate(config)
  return config


@functools.lru_cache(maxsize=None)
def compiled(method, shape):
  """(method, init, train_step, score), jitted once per (method, shape): compiles dominate."""
  # EGBAD's warm-started search is compiled for vectors only (a conv search
  # compiles slowly); its image closures are checked without the loop.
  m = methods.make(method_config(method, search_steps=3 if shape == VECTOR else 0), shape)
  return m, jax.jit(m.init), jax.jit(m.train_step), jax.jit(m.score)


def batch(shape, n=8, seed=0):
  return np.random.default_rng(seed).uniform(-1.0, 1.0, (n,) + shape).astype(np.float32)


@functools.lru_cache(maxsize=None)
def one_step(method, shape):
  """(state before, state after, metrics) of one train step on `batch(shape)`."""
  _, init, train_step, _ = compiled(method, shape)
  state = init(jax.random.key(0), batch(shape))
  new_state, metrics = train_step(state, batch(shape), jax.random.key(1))
  return state, new_state, metrics


def leaves(tree):
  """The leaves as numpy arrays (numpy, not eager jax ops: each of those compiles)."""
  return [np.asarray(a) for a in jax.tree_util.tree_leaves(jax.device_get(tree))]


def all_changed(before, after):
  return all(np.any(a != b) for a, b in zip(leaves(before), leaves(after)))


def assert_batch_independent(score, state, x, names):
  """Eval mode: a sample's outputs depend neither on its position nor on the other samples."""
  key = jax.random.key(2)
  out = score(state, x, key)
  perm = np.array([5, 3, 0, 1, 4, 2, 7, 6])
  shuffled = score(state, x[perm], key)
  other = x.copy()
  other[1:] = batch(x.shape[1:], n=7, seed=9)
  other = score(state, other, key)
  for name in names:
    np.testing.assert_allclose(shuffled[name], out[name][perm], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(other[name][0], out[name][0], rtol=1e-5, atol=1e-6)
  return out


# ----------------------------------------------- GANomaly, Skip-GANomaly ---

SMALL_IMAGE = (8, 8, 1)  # Skip-GANomaly with the patch discriminator only.


def gan_config(method, discriminator="dcgan", reinit=1e-5, patch_layers=2):
  config = configs.base_config(method)
  config.model.nz, config.model.base_features, config.model.mlp_widths = 4, 4, (8, 4)
  config.model.discriminator, config.model.patch_layers = discriminator, patch_layers
  config[method].reinit_d_below = reinit
  return config


# Three compiled variants cover the code paths (compiles dominate the runtime):
# GANomaly on images (DCGAN D), GANomaly on vectors with D re-init forced at
# every step, Skip-GANomaly on 8x8 images (a 3-level U-Net) with the patch
# discriminator (1 stride-2 layer: 2x2 patches). The end-to-end runs compile
# the default re-init threshold on images.
GAN_CASES = {"ganomaly_image": ("ganomaly", IMAGE, "dcgan", 0.0, 2),
             "ganomaly_vector_reinit": ("ganomaly", VECTOR, "dcgan", 1e9, 2),
             "skip_patch": ("skip_ganomaly", SMALL_IMAGE, "patch", 0.0, 1)}


@functools.lru_cache(maxsize=None)
def jitted_gan(case):
  """(config, shape, init, train_step, score) of GAN_CASES[case], jitted once."""
  method, shape, discriminator, reinit, patch_layers = GAN_CASES[case]
  config = gan_config(method, discriminator, reinit, patch_layers)
  m = methods.make(config, shape)
  return config, shape, jax.jit(m.init), jax.jit(m.train_step), jax.jit(m.score)


def gan_batch(shape, n=8, seed=0):
  return jax.random.uniform(jax.random.key(seed), (n,) + shape, minval=-1.0, maxval=1.0)


def kernels_changed(before, after):
  """Whether every kernel changed (biases start at zero, and a fresh D has zero biases too)."""
  flat = jax.tree_util.tree_flatten_with_path(jax.tree_util.tree_map(
      lambda a, b: bool(jnp.any(a != b)), before, after))[0]
  kernels = [v for path, v in flat if "kernel" in jax.tree_util.keystr(path)]
  return bool(kernels) and all(kernels)


# ------------------------------------------------- pretrained backbones ---

PRETRAINED_SHAPE = (32, 32, 1)


def pretrained_config(method, weights, name="efficientnet-lite0", **updates):
  """A `method` config on the `weights` fixture's backbone `name` at a 32 x 32 input."""
  config = configs.base_config(method)
  config.pretrained.backbone = name
  config.pretrained.weights = weights[name]
  config.pretrained.input_size = 32
  config.pretrained.cache_dir = ""
  config.eval.batch_size = 16
  config.update_from_flattened_dict(updates)
  return config


def smooth_images(n, seed=0):
  """Smooth random images in [-1, 1]: normal data with structure, not white noise."""
  rng = np.random.default_rng(seed)
  base = rng.normal(size=(n, 8, 8, 1))
  return np.tanh(np.kron(base, np.ones((1, 4, 4, 1)))).astype(np.float32)


# ------------------------------------------------------------------- nets ---


def param_count(params):
  return sum(x.size for x in jax.tree.leaves(params))


STAGE_TOL = 1e-4  # Max abs difference from the PyTorch reference at every named stage.


@functools.lru_cache(maxsize=None)
def jit_apply(model):
  return jax.jit(model.apply)


def random_images(n, size, seed=0):
  return np.random.RandomState(seed).randn(n, size, size, 3).astype(np.float32)


def assert_stages_close(model, variables, x, reference):
  out = jit_apply(model)(variables, x)
  assert out.keys() == reference.keys()
  for name, ref in reference.items():
    ref = ref.detach().numpy().transpose(0, 2, 3, 1)
    assert out[name].shape == ref.shape, name
    diff = float(np.max(np.abs(np.asarray(out[name]) - ref)))
    print(f"{name}: max abs diff {diff:.2e} (max |ref| {np.max(np.abs(ref)):.1f})")
    assert diff <= STAGE_TOL, (name, diff)


def randomise_batch_stats(torch_model, seed=0):
  """Random BN scale, bias and running statistics (not 0 / 1), in eval mode.

  Running variances in [1, 3] keep the activations below ~4 through 16 residual
  blocks, so the float32 rounding stays well below the 1e-4 tolerance.
  """
  import torch  # pylint: disable=g-import-not-at-top
  gen = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for m in torch_model.modules():
      if isinstance(m, torch.nn.BatchNorm2d):
        m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=gen))
        m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=gen))
        m.running_mean.copy_(0.2 * torch.randn(m.running_mean.shape, generator=gen))
        m.running_var.copy_(1 + 2 * torch.rand(m.running_var.shape, generator=gen))
  return torch_model.eval()


# ----------------------------------------------------------- figure data ---


def scores(n=60, shift=1.5, seed=0):
  rng = np.random.default_rng(seed)
  labels = (np.arange(n) % 3 == 0).astype(np.int32)
  return labels, rng.normal(size=n) + shift * labels


def masked_split(n=12, size=16):
  rng = np.random.default_rng(0)
  x = rng.uniform(-1, -0.5, size=(n, size, size, 1)).astype(np.float32)
  y = (np.arange(n) % 2).astype(np.int32)
  masks = np.zeros((n, size, size), np.float32)
  for i in np.flatnonzero(y):
    r, c = 2 + i % 8, 9 - i % 7
    masks[i, r:r + 4, c:c + 3] = 1.0
  x[masks > 0] = 1.0
  recon = np.full_like(x, -0.75)
  maps = np.mean((x - recon) ** 2, axis=-1)
  split = splits_lib.Split(x=x, y=y, kinds=np.where(y == 1, "bar", "good"), masks=masks)
  outputs = {"score": maps.mean(axis=(1, 2)), "score_max": maps.max(axis=(1, 2)),
             "recon": recon, "map": maps}
  return split, outputs


def spot_folder(root, height=24, width=40, kinds=("spot",)):
  """An MVTec-style category of noise photos; each kind's photos hold a bright masked square.

  Four test photos a kind (the square moved along by the kind's index), 20
  training and 4 test normals; returns `root`.
  """
  rng = np.random.default_rng(0)
  files = [f"train/good/{i}.png" for i in range(20)] + [f"test/good/{i}.png" for i in range(4)]
  for sub in ("train/good", "test/good"):
    os.makedirs(os.path.join(root, sub))
  for kind in kinds:
    files += [f"test/{kind}/{i}.png" for i in range(4)]
    os.makedirs(os.path.join(root, "test", kind))
    os.makedirs(os.path.join(root, "ground_truth", kind))
  for name in files:
    image = rng.integers(90, 160, (height, width), np.uint8)
    kind = name.split("/")[1]
    if kind in kinds:
      mask = np.zeros((height, width), np.uint8)
      left = 6 + 8 * kinds.index(kind)
      mask[4:12, left:left + 8] = 255
      image[mask > 0] = 255
      stem = os.path.splitext(os.path.basename(name))[0]
      Image.fromarray(mask).save(os.path.join(root, "ground_truth", kind, f"{stem}_mask.png"))
    Image.fromarray(image).save(os.path.join(root, name))
  return root
