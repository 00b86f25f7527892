"""Continual recommendation: the time-period protocol, the four methods on tiny periods, ADER's loss, resume."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient
from run_trackers import new_run_tracker
from test_sequential_pipeline import SMALL

from models.losses.ader import adaptive_weight, ader_distillation
from scenarios.recsys.periods import RECBOLE_PERIODS, Timeline, boundaries, check
from suite import registry
from suite.api import DataError, RunContext
from suite.checkpoints import CheckpointStore
from suite.periodic import runner
from suite.periodic.entries import PeriodTrainOptions
from suite.periodic.replay import Replay, ReplayOptions, herding
from suite.seeding import seed_everything
from suite.sequential import entries as sequential
from suite.tracking import Tracker

METHODS = {
    "rec-finetune": ("rec-finetune", {}),
    "rec-joint": ("rec-joint", {}),
    "rec-replay": ("rec-replay", {"size": 30}),
    "rec-replay-herding": ("rec-replay", {"size": 30, "policy": "herding"}),
    "ader": ("ader", {"size": 30}),
}


def write_timeline_dataset(folder: Path, users: int = 30, steps: int = 12) -> Path:
    """Users walking a 20-item ring, their interactions interleaved in time (every user spans every period)."""
    rng = np.random.default_rng(5)
    target = folder / "walks" / "walks.inter"
    target.parent.mkdir(parents=True)
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    for user in range(users):
        item = int(rng.integers(0, 20))
        for step in range(steps):
            lines.append(f"u{user}\ti{item}\t{100 * step + user}")
            item = (item + int(rng.integers(1, 3))) % 20
    target.write_text("\n".join(lines) + "\n")
    return target.parent


def test_each_period_evaluates_every_users_last_interaction_and_trains_on_the_others():
    # user 0: times 1, 2, 5, 6 ; user 1: times 3, 7, 8 ; cut at 4: period 0 = (-, 4], period 1 = (4, -)
    users = np.array([1, 0, 0, 1, 0, 0, 1])
    items = np.array([30, 10, 11, 31, 12, 13, 32])
    times = np.array([3.0, 1, 2, 7, 5, 6, 8])
    timeline = Timeline.of(users, items, times, np.array([4.0]))
    assert timeline.items.tolist() == [10, 11, 12, 13, 30, 31, 32] and timeline.period.tolist() == [0, 0, 1, 1, 0, 1, 1]
    assert timeline.evaluation(0).tolist() == [1]  # user 0's last of period 0; user 1 has one interaction there
    assert timeline.training(0).tolist() == []  # user 0's first has no history, the second is evaluated
    assert timeline.evaluation(1).tolist() == [3, 6]
    assert timeline.training(1).tolist() == [2, 5]
    sequences, lengths = timeline.inputs(np.array([3, 6]), max_length=2)
    assert sequences.tolist() == [[11, 12], [30, 31]] and lengths.tolist() == [2, 2]
    sequences, lengths = timeline.inputs(np.array([1]), max_length=3)
    assert sequences.tolist() == [[10, 0, 0]] and lengths.tolist() == [1]


def test_periods_by_quantile_hold_equal_counts_and_by_span_equal_times():
    times = np.array([0.0, 1, 2, 3, 10, 20, 30, 100])
    assert boundaries(times, 4, "quantile").tolist() == [1.0, 3.0, 20.0]
    assert boundaries(times, 4, "span").tolist() == [25.0, 50.0, 75.0]


def test_too_little_data_per_period_names_every_periods_counts(tmp_path):
    data = write_timeline_dataset(tmp_path, users=6, steps=6)
    options = RECBOLE_PERIODS.options(path=str(data), experiences=3, min_eval_users=10)
    with pytest.raises(DataError, match=r"period 0: 12 interactions, \d+ training samples, 6 evaluation users; period 1"):
        check(options)


def test_ader_distillation_on_a_hand_computed_case():
    student = torch.tensor([[1.0, 0.0, 5.0]])
    teacher = torch.tensor([[0.0, math.log(3.0), -7.0]])
    old = torch.tensor([True, True, False])  # the third item is new: left out of both softmaxes
    # teacher over old items: (1/4, 3/4); student: (e/(e+1), 1/(e+1))
    expected = -(0.25 * math.log(math.e / (math.e + 1)) + 0.75 * math.log(1 / (math.e + 1)))
    assert ader_distillation(student, teacher, old).item() == pytest.approx(expected, rel=1e-6)
    assert adaptive_weight(0.8, old_items=50, items=200, exemplars=100, samples=400) == pytest.approx(0.8 * math.sqrt(0.25 * 0.25))


def test_herding_starts_from_the_row_nearest_the_mean():
    features = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7], [1.0, 0.1]])
    assert herding(features, 2)[0] == 2


def test_the_reservoir_never_exceeds_its_size_and_draws_the_same_for_a_seed():
    def fill(seed: int) -> list[int]:
        replay = Replay(ReplayOptions(size=5), seed)
        for period, new in enumerate([np.arange(0, 8), np.arange(8, 20)]):
            replay.buffer = replay._reservoir(new, np.random.default_rng([seed, period, 1]))
            replay.seen += len(new)
        return replay.buffer.tolist()

    assert len(fill(0)) == 5 and fill(0) == fill(0)
    assert any(sample >= 8 for sample in fill(0))


class Interrupted(Exception):
    """Stands for the kill: raised after a period's checkpoint was saved."""


def _run(case: str, tracker: Tracker, data: Path, run_dir: Path) -> dict[str, float]:
    method, options = METHODS[case]
    entry = registry.get("method", method)
    run_dir.mkdir()
    ctx = RunContext(
        seed=0,
        scenario_entry=RECBOLE_PERIODS,
        scenario_options=RECBOLE_PERIODS.options(path=str(data), experiences=3, max_seq_length=8, min_eval_users=5),
        model_entry=sequential.SASREC,
        model_options=sequential.SASRecOptions(encoder="fused", **SMALL),
        method_options=entry.options.model_validate(options),
        train_options=PeriodTrainOptions(epochs=2, train_batch_size=32, eval_batch_size=64, num_threads=1),
        tracker=tracker,
        run_dir=run_dir,
        cache_dir=run_dir.parent / "cache",
        quiet=True,
        checkpoints=CheckpointStore(tracker, run_dir),
    )
    seed_everything(0)
    return entry.run(ctx)


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(METHODS))
def test_each_method_trains_logs_its_matrices_and_resumes_to_the_same_metrics(case, tmp_path, tracking_uri, monkeypatch):
    data = write_timeline_dataset(tmp_path / "data")
    whole = new_run_tracker(tracking_uri, tmp_path, "periods")
    expected = _run(case, whole, data, tmp_path / "whole")
    for name in ("ndcg", "hr"):
        for key in (f"avg_{name}_at_10", f"last_{name}_at_10", f"forgetting_{name}_at_10", f"bwt_{name}_at_10"):
            assert math.isfinite(expected[key])
        assert 0.0 <= expected[f"avg_{name}_at_10"] <= 1.0
    client = MlflowClient(tracking_uri)
    artifacts = {artifact.path for artifact in client.list_artifacts(whole.run_id)}
    assert {"ndcg_matrix.json", "ndcg_matrix.png", "hr_matrix.json", "hr_matrix.png"} <= artifacts
    assert [point.step for point in client.get_metric_history(whole.run_id, "period_train_seconds")] == [0, 1, 2]

    original = runner.evaluate
    calls: list[int] = []

    def evaluate_then_die(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # the third period: periods 0 and 1 are saved
            raise Interrupted("killed in period 2")
        return original(*args, **kwargs)

    monkeypatch.setattr(runner, "evaluate", evaluate_then_die)
    resumed = new_run_tracker(tracking_uri, tmp_path, "periods")
    with pytest.raises(Interrupted):
        _run(case, resumed, data, tmp_path / "first")
    monkeypatch.setattr(runner, "evaluate", original)
    again = _run(case, resumed, data, tmp_path / "second")
    timed = "train_seconds"  # wall time: the only value a resumed run may not repeat
    assert {k: v for k, v in again.items() if k != timed} == {k: v for k, v in expected.items() if k != timed}
