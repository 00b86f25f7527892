"""Sequential resume: a run interrupted after an epoch and resumed from its CheckpointStore ends with
exactly the metrics of an uninterrupted run (CPU), in the same MLflow run, without retraining the
epochs it had finished. SASRec (RecBole's own training step) and MCLRec (two optimizers, random
augmentations) each interrupted mid-training; SASRec also after training, during the test evaluation.
Exact comparison is sound on any machine: both runs are computed there, on the same kernels
(machine-bound by design, audited for issue 17). Across devices see ``test_gpu.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient
from run_trackers import new_run_tracker
from test_sequential_pipeline import SMALL, write_ring_dataset

from scenarios.recsys.entries import RECBOLE
from suite.api import NoOptions, RunContext
from suite.checkpoints import CHECKSUM_KEY, CheckpointStore
from suite.seeding import seed_everything
from suite.sequential import entries as P
from suite.sequential import pipeline
from suite.sequential.train_options import SequentialTrainOptions
from suite.tracking import Tracker

EPOCHS = 3
MODELS = {
    "sasrec": (P.SASREC, P.SASRecOptions(**SMALL), P.RECBOLE_TRAINER, NoOptions()),
    "mclrec": (P.MCLREC, P.MCLRecOptions(**SMALL), P.MCLREC_TRAINER, P.MetaTrainerOptions()),
}


class Interrupted(Exception):
    """Stands for the kill: raised from inside the run, after some epochs were saved."""


def _run(name: str, tracker: Tracker, data: Path, run_dir: Path) -> dict[str, float]:
    """One attempt of a child run, as the launcher makes it: a fresh run folder, seeded, the run's own store."""
    model_entry, model_options, method, method_options = MODELS[name]
    run_dir.mkdir()
    ctx = RunContext(
        seed=0,
        scenario_entry=RECBOLE,
        scenario_options=RECBOLE.options(path=str(data), max_seq_length=10),
        model_entry=model_entry,
        model_options=model_options,
        method_options=method_options,
        train_options=SequentialTrainOptions(epochs=EPOCHS, train_batch_size=64, eval_batch_size=128, topk=[5, 10], num_threads=1),
        tracker=tracker,
        run_dir=run_dir,
        cache_dir=run_dir.parent / "cache",
        quiet=True,
        checkpoints=CheckpointStore(tracker, run_dir),
    )
    seed_everything(0)
    return method.run(ctx)


def _history(uri: str, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((point.step, point.value) for point in MlflowClient(uri).get_metric_history(run_id, key))


def _interrupt_at_epoch(monkeypatch: pytest.MonkeyPatch, epoch: int) -> list[int]:
    """Raise once, when epoch ``epoch`` reports its training loss (before it is logged or saved).

    Returns the list of epochs trained, from then on, by every attempt.
    """
    trained: list[int] = []
    raised: list[bool] = []
    original = pipeline.EpochLog.__call__

    def call(self: pipeline.EpochLog, kind: str, at: int, values: dict[str, float]) -> None:
        if kind == "train":
            trained.append(at)
            if at == epoch and not raised:
                raised.append(True)
                raise Interrupted(f"killed in epoch {at}")
        original(self, kind, at, values)

    monkeypatch.setattr(pipeline.EpochLog, "__call__", call)
    return trained


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_run_interrupted_after_an_epoch_resumes_to_the_same_metrics(
    name: str, tmp_path: Path, tracking_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = write_ring_dataset(tmp_path / "data")
    whole = new_run_tracker(tracking_uri, tmp_path, "resume")
    expected = _run(name, whole, data, tmp_path / "whole")

    resumed = new_run_tracker(tracking_uri, tmp_path, "resume")
    trained = _interrupt_at_epoch(monkeypatch, 2)
    with pytest.raises(Interrupted):
        _run(name, resumed, data, tmp_path / "first")
    state = torch.load(tmp_path / "first" / "checkpoints" / "resume.pt", weights_only=True)
    assert state["epoch"] == 1 and {"rng", "loader_generators", "best_checkpoint"} <= set(state)
    if name == "mclrec":
        assert {"encoder_optimizer", "augmenter_optimizer"} <= set(state)  # both of MetaTrainer's optimizers
    assert state["train_seconds"] > 0
    state.pop(CHECKSUM_KEY)
    CheckpointStore(resumed, tmp_path / "edited").save({**state, "train_seconds": 1000.0})  # as if the first process trained 1000 s
    trained.clear()
    final = _run(name, resumed, data, tmp_path / "second")

    assert final == expected  # exact, every metric
    assert trained == [2]  # epochs 0 and 1 were not trained again
    loss_key = "train.loss_total" if name == "mclrec" else "train.loss"
    for key in (loss_key, "valid_epoch.ndcg_at_10"):
        assert _history(tracking_uri, resumed.run_id, key) == _history(tracking_uri, whole.run_id, key)
    metrics = MlflowClient(tracking_uri).get_run(resumed.run_id).data.metrics
    assert metrics["best_valid.ndcg_at_10"] == MlflowClient(tracking_uri).get_run(whole.run_id).data.metrics["best_valid.ndcg_at_10"]
    assert metrics["train_seconds"] > 1000  # the count went on from the checkpoint's, not from 0


@pytest.mark.slow
def test_a_run_interrupted_after_training_only_evaluates_again(tmp_path: Path, tracking_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    data = write_ring_dataset(tmp_path / "data")
    expected = _run("sasrec", new_run_tracker(tracking_uri, tmp_path, "resume"), data, tmp_path / "whole")
    original = pipeline.evaluate_test

    def interrupted(*args: object, **kwargs: object) -> None:
        monkeypatch.setattr(pipeline, "evaluate_test", original)
        raise Interrupted("killed while testing")

    monkeypatch.setattr(pipeline, "evaluate_test", interrupted)
    tracker = new_run_tracker(tracking_uri, tmp_path, "resume")
    with pytest.raises(Interrupted):
        _run("sasrec", tracker, data, tmp_path / "first")
    trained = _interrupt_at_epoch(monkeypatch, -1)  # records any epoch trained
    assert _run("sasrec", tracker, data, tmp_path / "second") == expected
    assert trained == []


KILL_AFTER_SAVES = """
# Loaded at interpreter start (sitecustomize): SIGKILL this process right after the N-th resume checkpoint.
import os, signal

from suite import checkpoints

_save, _count = checkpoints.CheckpointStore.save, [0]

def save(self, state):
    _save(self, state)
    _count[0] += 1
    if _count[0] == int(os.environ["KILL_AFTER_SAVES"]):
        os.kill(os.getpid(), signal.SIGKILL)

checkpoints.CheckpointStore.save = save
"""


@pytest.mark.slow
def test_suite_resume_after_sigkill_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    """The real thing for MCLRec (two optimizers, its own augmentation generator): `suite run` SIGKILLed after
    epoch 1's checkpoint, `suite resume RUN_ID`, every final metric exactly as a run never killed."""
    data = write_ring_dataset(tmp_path / "data")
    spec = tmp_path / "mclrec-tiny.yaml"
    model = ", ".join(f"{key}: {value}" for key, value in SMALL.items())
    spec.write_text(
        f"experiment: resume-mclrec\nseeds: [0]\nscenario: {{name: recbole, path: {data}, max_seq_length: 10}}\n"
        f"model: {{name: mclrec, {model}}}\nmethod: {{name: mclrec-trainer}}\n"
        f"train: {{epochs: {EPOCHS}, train_batch_size: 64, eval_batch_size: 128, topk: [5, 10], num_threads: 1}}\n"
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "SUITE_CACHE": str(tmp_path / "cache")}
    reference = _suite_cli("run", str(spec), "-q", env=env)
    assert reference.returncode == 0, reference.stderr[-3000:]
    (tmp_path / "kill").mkdir()
    (tmp_path / "kill" / "sitecustomize.py").write_text(KILL_AFTER_SAVES)
    killing = {**env, "PYTHONPATH": os.pathsep.join([str(tmp_path / "kill"), env.get("PYTHONPATH", "")]), "KILL_AFTER_SAVES": "2"}
    killed = _suite_cli("run", str(spec), "-q", env=killing)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("resume-mclrec").experiment_id
    done, interrupted = client.search_runs([experiment], "tags.`suite.kind` = 'child'", order_by=["attributes.start_time ASC"])
    assert interrupted.info.status == "RUNNING"
    resumed = _suite_cli("resume", interrupted.info.run_id, "-q", env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = client.get_run(interrupted.info.run_id)
    assert after.info.status == "FINISHED" and after.data.tags["suite.resumed"] == "1"
    finals = [key for key in done.data.metrics if key.startswith(("test.", "best_valid."))]
    assert finals and {key: after.data.metrics[key] for key in finals} == {key: done.data.metrics[key] for key in finals}


def _suite_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "suite.cli", *args], env=env, capture_output=True, text=True, timeout=900)
