"""Ensembles: seeds x a hyperparameter grid in one vmapped program (`ganad_jax.ensemble`).

Level 4 transform equivalences: member (point, seed k) of an ensemble equals
the single run with seed k and that point's hyperparameters (AnoGAN with its
search lambda / lr, GANomaly with w_con and the learning rate), in parameters
and scores; an ensemble run killed mid-run resumes to the uninterrupted
result; early stopping is per member. Runs use configs/test.py sizes.
"""

import json
import os

import jax
import numpy as np
import pytest

from ganad_jax import data
from ganad_jax import ensemble
from ganad_jax import runner
from ganad_jax import scoring
from ganad_jax import train
from ganad_jax import workdir as workdir_lib
from configs import test as test_config
import harness
import helpers


@pytest.fixture(scope="module")
def splits():
  return data.load(test_config.get_config("method=ae").data, 0)


def _train(config, splits, tmp_path, name):
  return train.train(config, str(tmp_path / name), splits)[:3]


def _val_scores(run, state, splits):
  return scoring.Scorer(run, 8).members(state, splits.val.x[:8])


def _assert_close(a, b, rtol=2e-5, atol=1e-6):
  jax.tree.map(lambda x, y: np.testing.assert_allclose(np.asarray(x, np.float64),
                                                       np.asarray(y, np.float64),
                                                       rtol=rtol, atol=atol), a, b)


# ------------------------------------------------------------- validation ---


@pytest.mark.parametrize("method,seeds,grid,match", [
    ("ganomaly", (), (("ganomaly.w_conn", (1.0, 2.0)),),
     r"'ganomaly.w_conn' is not a config field\. Did you mean ganomaly\.w_con"),
    ("ae", (), (("train.batch_size", (8, 16)),),
     r"'train.batch_size' cannot be a grid axis: train settings are shared .*sweep\.py"),
    ("ae", (), (("model.nz", (4, 5)),),
     r"model\.nz=5 changes the shapes of the state.*experiments/sweep\.py"),
    ("anogan", (), (("anogan.search.steps", (3, 4)),),
     r"anogan\.search\.steps=4 changes the program of anogan's score"),
    ("ganomaly", (), (("ganomaly.reinit_d_below", (1e-5, 0.0)),),
     r"ganomaly\.reinit_d_below=0\.0 changes the program of ganomaly's train_step"),
    ("ganomaly", (), (("ganomaly.w_con", ()),), r"non-empty tuple of values"),
    ("ganomaly", (), (("ganomaly.w_con", ("ten",)),), r"value 'ten' of 'ganomaly.w_con' does not"),
    ("ganomaly", (), (("ganomaly", (1.0,)),), r"'ganomaly' is a config section"),
    ("ae", (0, 0), (), r"repeated seeds"),
    ("ae", (0, -1), (), r"non-negative ints"),
])
def test_grid_and_seeds_are_validated_by_name(method, seeds, grid, match):
  config = helpers.ensemble_run_config(method, seeds=seeds, grid=grid)
  with pytest.raises(ValueError, match=match):
    runner.build(config, (16, 16, 1))


def test_members_are_points_times_seeds():
  config = helpers.ensemble_run_config(
      "ganomaly", seeds=(3, 1), grid=(("ganomaly.w_con", (1, 10)), ("optim.lr", (1e-3, 2e-3))))
  members = ensemble.plan(config)
  assert members.size == 8 and members.num_points == 4 and members.num_seeds == 2
  assert members.seeds == (3, 1) * 4
  assert members.points[3] == (("ganomaly.w_con", 1), ("optim.lr", 2e-3))
  assert members.label(5) == "seed 1, ganomaly.w_con=10, optim.lr=0.001"
  single = ensemble.member_config(config, 1, members.points[5])
  assert (single.seed, single.ganomaly.w_con, single.optim.lr) == (1, 10.0, 1e-3)
  assert ensemble.plan(single) is None
  assert ensemble.plan(helpers.ensemble_run_config("ae")) is None


# ------------------------------------------ members equal their single runs ---


@pytest.mark.parametrize("method,grid,member,batching", [
    # AnoGAN: the search's lambda and lr come from state["hparams"].
    ("anogan", (("anogan.search.lam", (0.1, 0.5)), ("anogan.search.lr", (0.01, 0.05))), 7,
     "vmap"),
    # GANomaly: a loss weight and the Adam learning rate.
    ("ganomaly", (("ganomaly.w_con", (50.0, 1.0)), ("optim.lr", (2e-4, 1e-3))), 7, "unroll"),
])
def test_member_equals_the_single_run_with_its_seed_and_point(method, grid, member, batching,
                                                             splits, tmp_path):
  # GANomaly without its D re-initialisation: the same equivalence, a smaller
  # program to compile (the re-init branch is GANomaly's own test's matter).
  # The ensemble runs on the 8-device mesh, 4 members x 2 data shards (the
  # latent search's samples too), the single runs on one device: one
  # comparison checks the vmap and the sharding.
  no_reinit = {"ganomaly.reinit_d_below": 0.0} if method == "ganomaly" else {}
  config = helpers.ensemble_run_config(method, seeds=(0, 1), grid=grid,
                                       **{**no_reinit, "mesh.devices": 8, "mesh.members": 4,
                                          "ensemble.batching": batching})
  run, state, info = _train(config, splits, tmp_path, "ensemble")
  assert run.members.size == 8 and info["steps"] == 3
  assert dict(run.mesh.shape) == {"members": 4, "data": 2}
  assert jax.tree.leaves(state)[0].shape[0] == 8
  # The last member: seed 1 and the second value of every axis.
  single_config = ensemble.member_config(config, run.members.seeds[member],
                                         run.members.points[member])
  single_config.mesh.devices, single_config.mesh.members = 1, 0
  assert single_config.seed == 1 and single_config.ensemble.grid == ()
  single_run, single_state, single_info = _train(single_config, splits, tmp_path, "single")
  _assert_close(ensemble.member_state(state, member), single_state)
  ens_scores = _val_scores(run, state, splits)
  single_scores = _val_scores(single_run, single_state, splits)[0]
  _assert_close(ens_scores[member], single_scores, rtol=1e-4)
  assert info["final_train_metrics"][member].keys() == single_info["final_train_metrics"].keys()
  # Other members really differ: other seeds and points, other params and scores.
  assert not np.allclose(ens_scores[0]["score"], ens_scores[member]["score"])
  if method == "anogan":
    # The search's lambda and lr are read by `score` only: member 1 (seed 1,
    # the first search point) trained exactly as member 7 and scores otherwise.
    helpers.assert_same_state(ensemble.member_state(state, 1)["params"],
                       ensemble.member_state(state, member)["params"])
    assert not np.allclose(ens_scores[1]["score"], ens_scores[member]["score"])
    np.testing.assert_allclose(np.asarray(state["hparams"]["search_lr"]),
                               [0.01, 0.01, 0.05, 0.05] * 2)


# ----------------- one AE ensemble: report, early stopping, kill / resume ---


def _command(workdir):
  """The CLI run of `helpers.ae_ensemble_config()` (the same config: results.json records it)."""
  return harness.script("train.py", "--config=configs/test.py", f"--workdir={workdir}",
                        *(f"--config.{k}={v}" for k, v in helpers.ENSEMBLE_OVERRIDES.items()))


def test_report_is_a_table_of_mean_and_std_over_seeds(ae_ensemble_run):
  workdir, results = ae_ensemble_run
  members = results["members"]
  assert [(m["seed"], m["point"]) for m in members] == [
      (0, {"optim.lr": 0.05}), (1, {"optim.lr": 0.05}), (0, {"optim.lr": 0.01}),
      (1, {"optim.lr": 0.01})]
  table = results["table"]
  assert [row["point"] for row in table] == [{"optim.lr": 0.05}, {"optim.lr": 0.01}]
  for row, pair in zip(table, (members[:2], members[2:])):
    aurocs = [m["metrics"]["score"]["auroc"] for m in pair]
    assert row["metrics"]["score"]["auroc"]["mean"] == pytest.approx(np.mean(aurocs))
    assert row["metrics"]["score"]["auroc"]["std"] == pytest.approx(np.std(aurocs))
    assert row["seeds"] == [0, 1]
  with open(os.path.join(workdir, "results.md"), encoding="utf-8") as f:
    text = f.read()
  assert "| grid point | seeds | auroc |" in text and "optim.lr=0.05 | 0,1 |" in text
  with open(os.path.join(workdir, "results.json"), encoding="utf-8") as f:
    assert json.load(f)["table"] == table


def test_early_stopping_is_per_member_as_in_single_runs(ae_ensemble_run, splits, tmp_path):
  # The ensemble's split is config.seed's (0), the `splits` fixture's.
  workdir, results = ae_ensemble_run
  members = results["members"]
  assert members[0]["stopped_early"] and not all(m["stopped_early"] for m in members)
  state = workdir_lib.restore(workdir, (16, 16, 1)).state
  m = 0  # Seed 0, lr 0.05: the member whose patience runs out.
  config = ensemble.member_config(helpers.ae_ensemble_config(), members[m]["seed"],
                                  members[m]["point"])
  _, single_state, info = _train(config, splits, tmp_path, f"single{m}")
  assert members[m]["best_step"] == info["best_step"]
  assert members[m]["stopped_early"] == info["stopped_early"]
  assert members[m]["best_val_score"] == pytest.approx(info["best_val_score"], rel=1e-5)
  # Member m's kept state is its best one, as the single run's.
  _assert_close(ensemble.member_state(state, m)["params"], single_state["params"], rtol=1e-3,
                atol=1e-5)


def test_sigkill_an_ensemble_then_rerun_matches_uninterrupted_run(ae_ensemble_run, tmp_path,
                                                                 shared_compilation_cache):
  uninterrupted, _ = ae_ensemble_run
  workdir = str(tmp_path / "killed")
  ckpt_dir = os.path.join(workdir, "checkpoints")
  env = harness.script_env(shared_compilation_cache)
  # Mid-grid, while a later checkpoint is written.
  harness.kill_when(_command(workdir), env, tmp_path / "killed.log",
                    lambda: harness.checkpoint_in_flight(ckpt_dir, helpers.ENSEMBLE_EVERY))
  killed_at = helpers.checkpoint_steps(workdir)[-1]
  assert helpers.ENSEMBLE_EVERY <= killed_at < helpers.ENSEMBLE_STEPS
  rerun = harness.run(_command(workdir), env)
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  assert f"at step {killed_at}." in rerun.stderr
  assert "optim.lr=0.01 | 0,1 |" in rerun.stdout  # The table is printed.
  assert helpers.checkpoint_steps(workdir) == helpers.checkpoint_steps(uninterrupted)
  restored = [workdir_lib.restore(w, (16, 16, 1)).state for w in (uninterrupted, workdir)]
  assert jax.tree.leaves(restored[0])[0].shape[0] == 4
  helpers.assert_same_state(restored[0], restored[1])  # The whole stacked best state, bitwise.
  assert helpers.results_without_wall_time(workdir) == helpers.results_without_wall_time(
      uninterrupted)
