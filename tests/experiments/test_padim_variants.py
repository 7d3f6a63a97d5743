"""Tests of experiments/padim_variants.py: one JSON line per variant, validation and test AUROCs."""

import json

import pytest

import harness
import helpers


@pytest.mark.usefixtures("weights_cache")
def test_padim_variants_prints_one_line_per_variant(backbone_weights, tmp_path,
                                                     shared_compilation_cache):
  folder = helpers.spot_folder(str(tmp_path / "cat"), height=32, width=32, kinds=("dark", "spot"))
  variants = [{"padim.sigma": 0.0}, {"padim.gaussian": "shared", "padim.layers": ["layer1"]}]
  result = harness.run(harness.script(
      "padim_variants.py", "--config=configs/test.py:method=padim",
      "--config.data.source=folder", "--config.data.protocol=folder", f"--config.data.path={folder}",
      "--config.data.max_per_class=0", "--config.data.val_fraction=0.2",
      "--config.pretrained.backbone=resnet18",  # Random weights: Lite0's leave levels constant.
      f"--config.pretrained.weights={backbone_weights['resnet18']}",
      "--config.pretrained.input_size=32", "--config.padim.channels=16",
      f"--variants={json.dumps(variants)}", "--test"),
      harness.script_env(shared_compilation_cache), check=True)
  rows = [json.loads(line) for line in result.stdout.splitlines()]
  assert [row["variant"] for row in rows] == variants
  for row in rows:
    names = {"cutpaste_image_auroc", "cutpaste_pixel_auroc", "test_image_auroc",
             "test_pixel_auroc"} | {f"test_pixel_auroc_{how}/{kind}"
                                    for how in ("within", "without") for kind in ("dark", "spot")}
    assert set(row) == names | {"variant"}, row
    assert all(0.0 <= row[name] <= 1.0 for name in names), row
