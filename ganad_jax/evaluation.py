"""Scoring a split in fixed-size batches, and the metrics of a run."""

import hashlib
import os
import shutil

import jax
import numpy as np

from ganad_jax import checkpoints
from ganad_jax import metrics as metrics_lib
from ganad_jax import run_outputs


def score_split(score_fn, state, x: np.ndarray, key, batch_size: int,
                cache_dir: str | None = None) -> dict[str, np.ndarray]:
  """Runs jitted `score_fn(state, batch, key)` over `x` in padded batches of `batch_size`.

  The last batch is padded by repeating its last row so one compilation serves
  every batch; padded rows are dropped. Every batch gets the same key, so an
  output never depends on where a sample sits in the split.

  With `cache_dir`, every finished batch is written there atomically, and a
  later call with the same state, inputs, key and batch size (checked by a
  fingerprint) loads it instead of recomputing it: a killed AnoGAN scoring
  run (a latent search over thousands of samples) resumes from its finished
  batches with identical results.
  """
  if len(x) == 0:
    raise ValueError("Cannot score an empty split.")
  if not np.all(np.isfinite(x)):
    raise ValueError(f"Refusing to score inputs with {np.sum(~np.isfinite(x))} NaN/Inf values.")
  if cache_dir is not None:
    _prepare_cache(cache_dir, _fingerprint(state, x, key, batch_size))
  chunks = []
  progress = run_outputs.Progress(len(x), unit="image" if x.ndim == 4 else "row",
                                label="scoring")
  for start in range(0, len(x), batch_size):
    path = cache_dir and os.path.join(cache_dir, f"batch_{start:09d}.npz")
    if path and os.path.exists(path):
      with np.load(path) as saved:
        chunks.append(dict(saved))
      continue
    batch = x[start:start + batch_size]
    n = len(batch)
    if n < batch_size:
      batch = np.concatenate([batch, np.repeat(batch[-1:], batch_size - n, axis=0)])
    out = score_fn(state, batch, key)
    chunks.append({k: np.asarray(v)[:n] for k, v in out.items()})
    if path:
      run_outputs.save_npz(path, chunks[-1])
    progress.update(min(start + batch_size, len(x)))
  outputs = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
  for name in score_names(outputs):
    bad = int(np.sum(~np.isfinite(outputs[name])))
    if bad:
      raise FloatingPointError(f"The model produced {bad} non-finite values of {name!r}; "
                               "the checkpoint is probably diverged. No results were written.")
  return outputs


def _fingerprint(state, x: np.ndarray, key, batch_size: int) -> str:
  h = hashlib.sha256(checkpoints.digest(state).encode())
  h.update(np.ascontiguousarray(x).tobytes())
  h.update(np.asarray(jax.random.key_data(key)).tobytes())
  h.update(f"{x.shape}{batch_size}".encode())
  return h.hexdigest()


def _prepare_cache(cache_dir: str, fingerprint: str) -> None:
  """Keeps `cache_dir`'s batches only if they were scored by this exact computation."""
  stamp = os.path.join(cache_dir, "fingerprint")
  if os.path.exists(stamp):
    with open(stamp, encoding="utf-8") as f:
      if f.read() == fingerprint:
        return
  shutil.rmtree(cache_dir, ignore_errors=True)
  os.makedirs(cache_dir)
  run_outputs.write_atomic(stamp, fingerprint)


def score_names(outputs: dict) -> list[str]:
  """The primary "score" first, then alternatives "score_<name>"."""
  return ["score"] + sorted(k for k in outputs if k.startswith("score_"))


def evaluate(test, test_out: dict, val_out: dict, quantile: float) -> dict:
  """Image metrics for every score, pixel metrics for the map, AUROCs per anomaly kind.

  Per kind (each kind's images against the test normals): the primary
  score's AUROC, and with masks and maps the pixel AUROC over those images.

  The threshold of each score is the `quantile` of its validation-normal
  scores: test labels never choose anything.
  """
  results = {"metrics": {}, "thresholds": {}}
  for name in score_names(test_out):
    threshold = metrics_lib.threshold_from_normals(val_out[name], quantile)
    results["thresholds"][name] = threshold
    use_maps = name == "score" and test.masks is not None and "map" in test_out
    results["metrics"][name] = metrics_lib.standard_metrics(
        test.y, test_out[name], threshold=threshold,
        masks=test.masks if use_maps else None, maps=test_out["map"] if use_maps else None)
  normal = test.y == 0
  results["auroc_per_kind"] = {
      str(kind): metrics_lib.auroc(test.y[normal | (test.kinds == kind)],
                                   test_out["score"][normal | (test.kinds == kind)])
      for kind in sorted(set(test.kinds[~normal].tolist()))
  }
  if test.masks is not None and "map" in test_out:
    results["pixel_auroc_per_kind"] = {
        kind: metrics_lib.pixel_auroc(test.masks[normal | (test.kinds == kind)],
                                      test_out["map"][normal | (test.kinds == kind)])
        for kind in results["auroc_per_kind"]}
  return results
