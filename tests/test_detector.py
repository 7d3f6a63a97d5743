"""The scikit-learn-style Detector: doctests, fit / score / predict / save / load, bad inputs."""

import doctest
import os

import jax
import numpy as np
import pytest

import ganad_jax
from ganad_jax import detector as detector_lib
from ganad_jax import evaluation
from ganad_jax import patches
from ganad_jax import workdir as workdir_lib
from ganad_jax.data import images as images_lib
from ganad_jax.data import protocols

TINY_TABULAR = dict(train__num_steps=30, train__batch_size=32, train__checkpoint_every=10,
                    model__nz=2, model__mlp_widths=(8, 4), optim__lr=1e-2)
TINY_IMAGE = dict(train__num_steps=4, train__batch_size=16, train__checkpoint_every=2,
                  model__nz=4, model__base_features=4, eval__batch_size=32)


def test_doctests():
  result = doctest.testmod(detector_lib, optionflags=doctest.ELLIPSIS)
  assert result.attempted >= 8
  assert result.failed == 0


@pytest.fixture(scope="module")
def rows():
  rng = np.random.default_rng(0)
  return rng.normal(size=(120, 5)) * np.array([1.0, 10.0, 0.1, 5.0, 2.0]) + 3.0


@pytest.fixture(scope="module")
def tabular_detector(rows, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("tab"))
  return ganad_jax.Detector("ae", workdir=workdir, **TINY_TABULAR).fit(rows)


def test_fit_uses_the_training_loop_and_scores_like_evaluation(tabular_detector, rows):
  det = tabular_detector
  assert det.train_info_["steps"] == 30
  assert os.path.exists(os.path.join(det.workdir_, "config.json"))
  # The same numbers as the experiment path: restore the workdir, score with score_split.
  trained = workdir_lib.restore(det.workdir_, (5,))
  method, state, step, key = trained.method, trained.state, trained.step, trained.score_key
  assert step == 30
  expected = evaluation.score_split(jax.jit(method.score), state, det._prepare(rows), key, 256)
  np.testing.assert_allclose(det.score_samples(rows), expected["score"], rtol=1e-6)


def test_scaler_is_fitted_on_the_training_rows_only(tabular_detector, rows):
  train_pos, val_pos = protocols.holdout(len(rows), 0.1, 0, what="rows")
  scaler = tabular_detector._scaler
  np.testing.assert_allclose(scaler.data_min_, rows[train_pos].min(axis=0))
  np.testing.assert_allclose(scaler.data_max_, rows[train_pos].max(axis=0))
  prepared = tabular_detector._prepare(rows[train_pos])
  assert prepared.min() == pytest.approx(-1.0) and prepared.max() == pytest.approx(1.0)
  assert len(val_pos) == 12


def test_scores_are_raw_higher_for_outliers_and_threshold_from_val(tabular_detector, rows):
  det = tabular_detector
  scores = det.score_samples(rows)
  assert scores.shape == (120,) and scores.dtype == np.float32 and np.all(np.isfinite(scores))
  far = rows[:20] + 40.0 * rows.std(axis=0)
  assert det.score_samples(far).min() > scores.max()
  assert det.predict(far).tolist() == [1] * 20
  _, val_pos = protocols.holdout(len(rows), 0.1, 0, what="rows")
  assert det.threshold_ == det.val_threshold_
  assert det.threshold_ == pytest.approx(np.quantile(scores[val_pos], 0.95), rel=1e-6)
  np.testing.assert_array_equal(det.predict(rows), (scores > det.threshold_).astype(int))


def test_save_load_round_trip_gives_the_same_scores(tabular_detector, rows, tmp_path):
  det = tabular_detector
  path = str(tmp_path / "saved")
  det.save(path)
  loaded = ganad_jax.Detector.load(path)
  np.testing.assert_array_equal(loaded.score_samples(rows), det.score_samples(rows))
  np.testing.assert_array_equal(loaded.predict(rows), det.predict(rows))
  assert loaded.threshold_ == det.threshold_ and loaded.method == "ae"
  det.save(path)  # Saving over a saved detector replaces it.
  assert ganad_jax.Detector.load(path).threshold_ == det.threshold_
  (tmp_path / "other").mkdir()
  (tmp_path / "other" / "notes.txt").write_text("mine")
  with pytest.raises(ValueError, match="not a saved Detector"):
    det.save(str(tmp_path / "other"))
  with pytest.raises(FileNotFoundError, match="not a saved Detector"):
    ganad_jax.Detector.load(str(tmp_path / "other"))


def test_workdir_with_a_checkpoint_of_other_data_is_refused(tabular_detector, rows):
  again = ganad_jax.Detector("ae", workdir=tabular_detector.workdir_, **TINY_TABULAR)
  np.testing.assert_array_equal(again.fit(rows).score_samples(rows),  # Same data: resumed.
                                tabular_detector.score_samples(rows))
  with pytest.raises(ValueError, match="trained on other data"):
    ganad_jax.Detector("ae", workdir=tabular_detector.workdir_, **TINY_TABULAR).fit(rows + 1.0)


@pytest.fixture(scope="module")
def images():
  rng = np.random.default_rng(1)
  x = rng.integers(0, 60, size=(80, 16, 16), dtype=np.uint8)
  x[:, 4:12, 6:10] += 150  # A bar: what is normal here.
  return x


@pytest.fixture(scope="module")
def image_detector(images):
  return ganad_jax.Detector("ae", contamination=0.2, **TINY_IMAGE).fit(images)


def test_contamination_sets_the_threshold_on_the_held_out_rows(image_detector, images):
  det = image_detector
  _, val_pos = protocols.holdout(len(images), 0.1, 0, what="rows")
  assert det.threshold_rows_ == len(val_pos) == 8
  assert det.threshold_ == pytest.approx(np.quantile(det.score_samples(images[val_pos]), 0.8),
                                         rel=1e-6)
  assert det.threshold_ != det.val_threshold_


def test_image_inputs_convert_like_the_loaders(image_detector, images):
  det = image_detector
  assert det.input_shape_ == (16, 16, 1)
  np.testing.assert_array_equal(det._prepare(images), images_lib.prepare_uint8(
      images[..., None], 16, 1))
  # Other sizes are resized; maps come back at the input's resolution.
  big = np.repeat(np.repeat(images[:3], 2, axis=1), 2, axis=2)
  maps = det.anomaly_map(big)
  assert maps.shape == (3, 32, 32) and np.all(maps >= 0)
  small_maps = det.anomaly_map(images[:3])
  assert small_maps.shape == (3, 16, 16)
  np.testing.assert_allclose(small_maps.mean(axis=(1, 2)), det.score_samples(images[:3]),
                             rtol=1e-5)


def test_float_images_in_unit_range_match_uint8(images):
  det = detector_lib.Detector("ae", **TINY_IMAGE)
  det._spec = {"kind": "image", "input_range": "0_1", "input_shape": [16, 16, 1]}
  prepared = det._prepare(images.astype(np.float32) / 255.0)
  np.testing.assert_allclose(prepared, images_lib.prepare_uint8(images[..., None], 16, 1),
                             atol=1e-5)
  det._spec["input_range"] = "-1_1"
  np.testing.assert_allclose(det._prepare(prepared), prepared)


def test_image_detector_save_load(image_detector, images, tmp_path):
  image_detector.save(str(tmp_path))
  loaded = ganad_jax.Detector.load(str(tmp_path))
  np.testing.assert_array_equal(loaded.anomaly_map(images[:4]), image_detector.anomaly_map(
      images[:4]))
  assert loaded.threshold_ == image_detector.threshold_


@pytest.mark.parametrize("bad,match", [
    (np.zeros(10), "rank 1"),
    (np.zeros((2, 16, 16, 1, 1)), "rank 5"),
    (np.where(np.eye(4, 5) > 0, np.nan, 1.0), "4 NaN/Inf"),
    (np.array([["a", "b"]]), "numeric array"),
    (np.zeros((0, 5)), "empty"),
    (np.zeros((4, 6)), r"rows \(N, 5\)"),
    (np.zeros((4, 16, 16)), r"rows \(N, 5\)"),
])
def test_bad_tabular_inputs_are_named(tabular_detector, bad, match):
  with pytest.raises(ValueError, match=match):
    tabular_detector.score_samples(bad)


def test_bad_image_inputs_are_named(image_detector, tabular_detector):
  with pytest.raises(ValueError, match="outside the range"):
    image_detector.score_samples(np.full((2, 16, 16), 300.0))
  with pytest.raises(ValueError, match="fitted on images"):
    image_detector.score_samples(np.zeros((2, 5)))
  with pytest.raises(ValueError, match="channels first"):
    image_detector.score_samples(np.zeros((2, 3, 16, 16), np.uint8))
  with pytest.raises(ValueError, match="anomaly_map needs images"):
    tabular_detector.anomaly_map(np.zeros((2, 5)))
  with pytest.raises(ValueError, match="Float images must lie in"):
    ganad_jax.Detector("ae", **TINY_IMAGE).fit(np.full((40, 16, 16), 7.0, np.float32))


def test_config_errors_and_conventions():
  with pytest.raises(ValueError, match="'train.num_stepz' is not a config field"):
    ganad_jax.Detector("ae", train__num_stepz=3)
  with pytest.raises(ValueError, match="no section 'trian'"):
    ganad_jax.Detector("ae", config={"trian.num_steps": 3})
  with pytest.raises(ValueError, match="contamination"):
    ganad_jax.Detector("ae", contamination=0.7)
  with pytest.raises(RuntimeError, match="not fitted"):
    ganad_jax.Detector("ae").score_samples(np.zeros((2, 5)))
  det = ganad_jax.Detector(config={"train.num_steps": 7}, model__mlp_widths=[8, 4])
  assert det.method == "ganomaly" and det.config.train.num_steps == 7
  assert det.config.model.mlp_widths == (8, 4)
  from configs import test as test_config  # pylint: disable=g-import-not-at-top
  base = test_config.get_config("method=ssim_ae")
  assert ganad_jax.Detector(config=base).method == "ssim_ae"
  assert base.train.num_steps == 6 and ganad_jax.Detector(
      config=base, train__num_steps=9).config.train.num_steps == 9
  assert base.train.num_steps == 6  # The caller's config is copied, not changed.


# ------------------------------------------------- ensembles, patches, checks ---


@pytest.fixture(scope="module")
def digit_rows():
  """scikit-learn's digits as rows (N, 64): normals (not 0) in a fixed random order."""
  from sklearn import datasets  # pylint: disable=g-import-not-at-top
  digits = datasets.load_digits()
  normal = digits.data[digits.target != 0]
  return normal[np.random.default_rng(0).permutation(len(normal))]


@pytest.fixture(scope="module")
def ensemble_detector(digit_rows, tmp_path_factory):
  # The reproduction: this ended in a JAX IndexError before the one Scorer.
  workdir = str(tmp_path_factory.mktemp("ens"))
  return ganad_jax.Detector("ae", workdir=workdir, ensemble__seeds=(0, 1),
                            **TINY_TABULAR).fit(digit_rows[:200])


def test_ensemble_scores_are_the_members_mean_and_member_k_picks_one(ensemble_detector,
                                                                     digit_rows):
  det, x = ensemble_detector, digit_rows[200:260]
  members = [det.score_samples(x, member=m) for m in (0, 1)]
  assert not np.array_equal(members[0], members[1])  # Two seeds, two models.
  mean = det.score_samples(x)
  assert mean.shape == (60,) and mean.dtype == np.float32
  np.testing.assert_allclose(mean, (members[0].astype(np.float64) + members[1]) / 2, rtol=1e-6)
  # Thresholds of the mean, and of each member on its own held-out scores.
  _, val_pos = protocols.holdout(200, 0.1, 0, what="rows")
  held_out = digit_rows[:200][val_pos]
  assert det.threshold_ == pytest.approx(np.quantile(det.score_samples(held_out), 0.95), rel=1e-6)
  for m in (0, 1):
    assert det.member_thresholds_[m]["threshold"] == pytest.approx(
        np.quantile(det.score_samples(held_out, member=m), 0.95), rel=1e-6)
    np.testing.assert_array_equal(det.predict(x, member=m),
                                  members[m] > det.member_thresholds_[m]["threshold"])
  with pytest.raises(ValueError, match=r"member=2 is out of range: .* ensemble of 2 members"):
    det.score_samples(x, member=2)


def test_ensemble_save_load_and_load_one_member(ensemble_detector, digit_rows, tmp_path):
  det, x = ensemble_detector, digit_rows[200:260]
  path = str(tmp_path / "saved")
  det.save(path)
  loaded = ganad_jax.Detector.load(path)
  np.testing.assert_array_equal(loaded.score_samples(x), det.score_samples(x))
  np.testing.assert_array_equal(loaded.predict(x, member=1), det.predict(x, member=1))
  one = ganad_jax.Detector.load(path, member=1)  # The single run it equals: rtol of float sums.
  np.testing.assert_allclose(one.score_samples(x), det.score_samples(x, member=1), rtol=2e-5)
  assert one.threshold_ == det.member_thresholds_[1]["threshold"]
  with pytest.raises(ValueError, match="single run"):
    one.score_samples(x, member=0)
  with pytest.raises(ValueError, match="member 1 of the ensemble"):
    one.save(str(tmp_path / "again"))


def test_member_of_a_single_run_is_refused(tabular_detector, rows):
  with pytest.raises(ValueError, match=r"member=0: this detector is a single run"):
    tabular_detector.score_samples(rows, member=0)


def test_patches_score_every_tile_and_stitch_the_maps(images, tmp_path):
  big = np.repeat(np.repeat(images, 2, axis=1), 2, axis=2)  # 32x32: the nets take 16x16 crops.
  det = ganad_jax.Detector("ae", patch__size=16, patch__stride=8, patch__sigma=0.0,
                           **TINY_IMAGE).fit(big)
  maps = det.anomaly_map(big[:5])
  assert maps.shape == (5, 32, 32)
  # The same as scoring the tiles by hand with the method and stitching them back.
  trained = workdir_lib.restore(det.workdir_, (32, 32, 1))
  protocol = patches.from_config(det.config)
  tiles = evaluation.score_split(jax.jit(trained.method.score), trained.state,
                                 patches.tile(det._prepare(big[:5]), protocol),
                                 trained.score_key, 32)
  expected = patches.image_outputs(tiles, (32, 32), protocol)
  np.testing.assert_allclose(maps, expected["map"], rtol=1e-5, atol=1e-7)
  scores = det.score_samples(big[:5])
  np.testing.assert_allclose(scores, expected["score"], rtol=1e-5)
  np.testing.assert_allclose(scores, maps.max(axis=(1, 2)), rtol=1e-5)  # max_map, no blur.
  det.save(str(tmp_path))
  np.testing.assert_array_equal(ganad_jax.Detector.load(str(tmp_path)).anomaly_map(big[:5]), maps)


def test_contamination_threshold_from_held_out_rows_flags_that_fraction_of_new_rows(digit_rows):
  """Fitted rows score lower than new ones: an in-sample quantile flags too many new rows.

  A Gaussian on the 64 pixels (closed form, no training) fitted on 210 digits,
  its threshold from 90 held-out ones. The fraction of new normals above the
  0.9 quantile of 90 scores has a standard deviation of about 0.03: within
  0.05 of 0.1 it is; the in-sample quantile of all 300 rows flags 0.21.
  """
  fit_rows, new_rows = digit_rows[:300], digit_rows[300:]
  det = ganad_jax.Detector("gaussian", contamination=0.1, data__val_fraction=0.3).fit(fit_rows)
  assert det.threshold_rows_ == 90
  flagged = det.predict(new_rows).mean()
  assert abs(flagged - 0.1) <= 0.05, flagged
  in_sample = np.quantile(det.score_samples(fit_rows), 0.9)  # The old rule (PyOD #144).
  assert (det.score_samples(new_rows) > in_sample).mean() > 0.15


def test_too_few_held_out_rows_for_contamination_are_refused_with_the_count(rows):
  det = ganad_jax.Detector("ae", contamination=0.05, **TINY_TABULAR)
  with pytest.raises(ValueError, match=(r"contamination=0.05 .* needs at least 20 held-out rows; "
                                        r"data.val_fraction=0.1 of the 120 rows of X holds out "
                                        r"12\.")):
    det.fit(rows)


@pytest.mark.parametrize("overrides,match", [
    ({"anogan__search__init": "random"}, r"anogan\.search\.init must be one of .*'random'"),
    ({"method": "egbad", "egbad__ema_decay": 1.5}, r"egbad\.ema_decay must lie in \[0, 1\); got 1.5"),
    ({"method": "gaussian", "gaussian__pool": "max"}, r"gaussian\.pool must be one of .*'max'"),
    ({"method": "ae", "ensemble__seeds": (0, 0)}, r"repeated seeds"),
    ({"method": "ae", "patch__size": -1}, r"patch\.size must be an int >= 0"),
])
def test_every_override_is_checked_at_construction(overrides, match):
  with pytest.raises(ValueError, match=match):
    ganad_jax.Detector(**dict({"method": "anogan"}, **overrides))
