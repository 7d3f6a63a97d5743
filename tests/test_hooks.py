"""Tests of `hooks`: which hooks a config builds, and how the training loop calls them."""

import pytest

from ganad_jax import checkpoints
from ganad_jax import data
from ganad_jax import hooks
from ganad_jax import runner
from ganad_jax import sharding
from ganad_jax import train
import helpers


def _build(config, total_steps=6):
  splits = data.load(config.data, config.seed)
  run = runner.build(config, splits.train.x.shape[1:], len(splits.train.x))
  abstract, shardings = runner.abstract_init(
      run, sharding.put(run.mesh, splits.train.x[:run.batch_size]))
  return hooks.build(config, run, "/nonexistent", splits, total_steps, abstract, shardings)


def test_build_makes_the_hooks_the_config_asks_for_in_order():
  assert _build(helpers.tiny_config()) == []
  early = {"train.early_stopping.eval_every": 2}
  assert [type(h) for h in _build(helpers.tiny_config(**early))] == [hooks.EarlyStopping]
  both = _build(helpers.tiny_config("ganomaly", **early, **{"eval.paper_repro": True}))
  assert [type(h) for h in both] == [hooks.EarlyStopping, hooks.PaperRepro]
  # A closed-form fit (0 steps) has nothing to stop early.
  assert _build(helpers.tiny_config(**early), total_steps=0) == []


def test_paper_repro_hook_refuses_an_ensemble_and_keeps_only_epoch_end_records():
  ensemble = helpers.tiny_config(**{"eval.paper_repro": True})
  ensemble.ensemble.seeds = (0, 1)
  with pytest.raises(ValueError, match="paper_repro=True is for single runs"):
    _build(ensemble)
  (paper,) = _build(helpers.tiny_config("ganomaly", **{"eval.paper_repro": True}), 20)
  epoch = paper._num_train // 16  # pylint: disable=protected-access
  assert [s for s in range(1, 21) if paper.due(s)] == sorted(
      set(range(epoch, 21, epoch)) | {20})
  # A record at a predecessor's last step that is no epoch end is dropped.
  records = [{"step": epoch, "auroc": 0.5}, {"step": epoch + 1, "auroc": 0.6}]
  paper.restore(epoch + 1, {"paper_repro": records})
  assert paper.checkpoint_meta() == {"paper_repro": records[:1]}
  paper.restore(0, {})
  assert paper.checkpoint_meta() == {"paper_repro": []}


class _Recorder(hooks.Hook):
  """Due at even steps; stops training after step `stop_at`; records what the loop did."""

  keeps_state = True

  def __init__(self, stop_at):
    self.stop_at, self.calls, self.restored, self.stopped = stop_at, [], None, False

  def restore(self, step, meta):
    self.restored = (step, meta.get("recorder"))

  def due(self, step):
    return step % 2 == 0

  def on_step(self, state, step):
    self.calls.append((step, int(state["step"])))
    self.stopped = step >= self.stop_at
    return {"recorder/step": float(step)}

  @property
  def stop(self):
    return self.stopped

  def checkpoint_meta(self):
    return {"recorder": [s for s, _ in self.calls]}

  def finish(self, state, step):
    return state, {"recorder_finished_at": step}


def test_the_loop_calls_hooks_at_their_steps_saves_their_record_and_stops(tmp_path,
                                                                          monkeypatch):
  config = helpers.tiny_config()  # 6 steps, checkpoints at 3 and 6.
  workdir = str(tmp_path)
  recorder = _Recorder(stop_at=4)
  monkeypatch.setattr(train.hooks_lib, "build", lambda *args: [recorder])
  _, state, info, _ = train.train(config, workdir)
  assert recorder.restored == (0, None)
  assert recorder.calls == [(2, 2), (4, 4)]  # The state after each due step.
  assert info["steps"] == 4 and info["recorder_finished_at"] == 4
  assert int(state["step"]) == 4
  # Saved at the interval (3) and where the hook stopped (4), with its record.
  mngr = checkpoints.manager(workdir, config)
  assert mngr.all_steps() == [3, 4]
  assert checkpoints.read_meta(mngr, 3)["recorder"] == [2]
  assert checkpoints.read_meta(mngr, 4)["recorder"] == [2, 4]
  # On resume the hook gets its record back with the checkpoint's step.
  again = _Recorder(stop_at=100)
  monkeypatch.setattr(train.hooks_lib, "build", lambda *args: [again])
  _, resumed, info, _ = train.train(config, workdir)
  assert again.restored == (4, [2, 4])
  assert again.calls == [(6, 6)] and info["steps"] == 6
  assert int(resumed["step"]) == 6
  assert checkpoints.read_meta(checkpoints.manager(workdir, config), 6)["recorder"] == [6]
