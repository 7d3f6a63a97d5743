r"""Compares PaDiM (or any map method's) variants on CutPaste copies of the validation normals.

  python experiments/padim_variants.py --config=configs/padim_magnetic_tile.py \
      --variants='[{"padim.layers": ["stage2", "stage3", "stage4"]}, {"padim.gaussian": "shared"}]'

For each variant (dotted config overrides): fit on the training split, then
the image and pixel AUROC of the validation normals against CutPaste copies
of them (`data.synthetic.cutpaste`, seeded with the config's seed; a copy's
pasted patch is its mask). Those two numbers use no anomaly label and are
what a variant may be chosen by. With --test, the test split's image and
pixel AUROC are printed too, for reporting only, with each defect kind's pixel
AUROC within its own photos and the pooled pixel AUROC without that kind (where
the pooled figure is lost). One JSON line per variant.
"""

import json

from absl import flags
import jax
import numpy as np
from ml_collections import config_flags

from ganad_jax import cli
from ganad_jax import data
from ganad_jax import evaluation
from ganad_jax import methods
from ganad_jax import metrics
from ganad_jax.data import synthetic

config_flags.DEFINE_config_file("config", None, "Base config (configs/*.py).", lock_config=True)
_VARIANTS = flags.DEFINE_string("variants", "[{}]", "JSON list of {dotted field: value} overrides.")
_TEST = flags.DEFINE_bool("test", False, "Also print the test split's AUROCs (reporting only).")


def main(argv):
  del argv
  base = flags.FLAGS.config
  splits = data.load(base.data, base.seed)
  copies, masks = synthetic.cutpaste(splits.val.x, np.random.default_rng(base.seed))
  for variant in json.loads(_VARIANTS.value):
    config = base.copy_and_resolve_references()
    config.update_from_flattened_dict(
        {k: tuple(v) if isinstance(v, list) else v for k, v in variant.items()})
    method = methods.make(config, splits.train.x.shape[1:])
    state = method.fit(method.init(jax.random.key(config.seed), splits.train.x[:2]),
                       splits.train.x, splits.val.x)
    score = jax.jit(method.score)

    def outputs(x):
      return evaluation.score_split(score, state, x, jax.random.key(0), config.eval.batch_size)

    val, pasted = outputs(splits.val.x), outputs(copies)
    labels = np.r_[np.zeros(len(val["score"])), np.ones(len(pasted["score"]))]
    row = {"variant": variant,
           "cutpaste_image_auroc": metrics.auroc(labels, np.r_[val["score"], pasted["score"]]),
           "cutpaste_pixel_auroc": metrics.pixel_auroc(masks, pasted["map"])}
    if _TEST.value:
      test, masks_test, kinds = outputs(splits.test.x), splits.test.masks, splits.test.kinds
      row.update(test_image_auroc=metrics.auroc(splits.test.y, test["score"]),
                 test_pixel_auroc=metrics.pixel_auroc(masks_test, test["map"]))
      # Where the pooled pixel AUROC is lost: each kind's pixels ranked within its own
      # photos only (localisation, no other photo's level), and the pooled AUROC without it.
      defect_kinds = sorted(set(kinds[splits.test.y == 1].tolist()))
      for kind in defect_kinds:
        own, rest = kinds == kind, kinds != kind
        row[f"test_pixel_auroc_within/{kind}"] = metrics.pixel_auroc(masks_test[own],
                                                                     test["map"][own])
        if len(defect_kinds) > 1:  # Without the only kind no defect pixel is left.
          row[f"test_pixel_auroc_without/{kind}"] = metrics.pixel_auroc(masks_test[rest],
                                                                        test["map"][rest])
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
  cli.run_main(main)
