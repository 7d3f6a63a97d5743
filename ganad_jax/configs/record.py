"""Which runs are the same run: the fields that do not count, and flat config records.

Two configs make the same run when every field is equal except
RESULT_NEUTRAL_FIELDS, which never change what a run computes or reports (up
to float32 summation order): how the work is laid out (devices and mesh, the
CPU convolution lowering, vmap or unroll of an ensemble, the scoring batch),
how often it logs and saves, the size of the TensorBoard image grid, and where
pretrained weights are cached or fetched from (the state holds the weights
themselves). A finished run is reused only for a config equal to its own but
for these (`workdir.finished_results`).

A checkpoint is resumed by a config equal to the one that wrote it but for
RESUME_NEUTRAL_FIELDS: the above and those that cannot change the state at a
given step: the run's length (step s's batch and key depend only on (seed, s),
so a longer run extends the same trajectory), what is done after training (the
threshold quantile) and where the data are read from (the checkpoint records a
digest of the data training saw, which must match).

What no config field shows, the content of a pretrained weight file, is
compared apart: checkpoints and results.json record the file's SHA-256, the
backbone and the input normalisation (`methods.backbone.weights_record`), and
`weights_change` names what differs, the file and both digests.
"""

import json

import ml_collections

RESULT_NEUTRAL_FIELDS = (
    "conv_lowering", "mesh", "ensemble.batching", "eval.batch_size", "train.log_every",
    "train.checkpoint_every", "train.max_checkpoints", "train.image_grid_size",
    "pretrained.cache_dir", "pretrained.allow_download")
RESUME_NEUTRAL_FIELDS = RESULT_NEUTRAL_FIELDS + (
    "train.num_steps", "train.num_epochs", "eval.threshold_quantile", "data.path",
    "data.data_dir")


def flatten(values: dict, prefix: str = "") -> dict:
  """{"data": {"class_index": 3}} -> {"data.class_index": 3}, values in their JSON form."""
  out = {}
  for key, value in values.items():
    name = f"{prefix}{key}"
    if isinstance(value, (dict, ml_collections.ConfigDict)):
      out.update(flatten(dict(value), name + "."))
    else:
      out[name] = json.loads(json.dumps(value))  # Tuples become lists, as read back from disk.
  return out


def run_record(config, neutral: tuple[str, ...]) -> dict:
  """Every field of `config` (dotted names) except those named or under a section in `neutral`."""
  return {name: value for name, value in flatten(config.to_dict()).items()
          if not any(name == n or name.startswith(n + ".") for n in neutral)}


def differing_fields(a: dict, b: dict) -> list[str]:
  """Sorted names whose values differ between two flat records (a missing name differs)."""
  missing = object()
  return sorted(k for k in set(a) | set(b) if a.get(k, missing) != b.get(k, missing))


def describe(record: dict, names: list[str]) -> str:
  """'data.class_index=0, seed=0': `names` with their values in `record` (digests shortened)."""
  def value(name):
    if name not in record:
      return "<unset>"
    v = record[name]
    if name.endswith("sha256") and isinstance(v, str):
      return v[:12] + "..."
    return json.dumps(v)
  return ", ".join(f"{name}={value(name)}" for name in names)


def weights_change(saved: dict | None, current: dict | None) -> str | None:
  """What differs between two pretrained-weights records, or None if they compute the same.

  A record is `methods.backbone.weights_record`'s (None: no pretrained
  weights); all but its "file" must be equal. The text names the file and
  both SHA-256 digests: "pretrained weights /w/my.pth of SHA-256 <saved>;
  this run's /w/my.pth has SHA-256 <current>".
  """
  drop_file = lambda r: r and {k: v for k, v in r.items() if k != "file"}
  if drop_file(saved) == drop_file(current):
    return None
  if current is None:
    return f"pretrained weights {saved['file']} (SHA-256 {saved['sha256']}); this run uses none"
  if saved is None:
    return (f"no record of pretrained weights (older ganad_jax, or none used); this run uses "
            f"{current['file']} of SHA-256 {current['sha256']}")
  parts = [f"{k}={json.dumps(saved[k])}; this run has {k}={json.dumps(current[k])}"
           for k in ("backbone", "normalization") if saved.get(k) != current.get(k)]
  if saved.get("sha256") != current.get("sha256"):
    parts.insert(0, f"pretrained weights {saved['file']} of SHA-256 {saved['sha256']}; this "
                    f"run's {current['file']} has SHA-256 {current['sha256']}")
  return "; ".join(parts)
