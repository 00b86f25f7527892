"""The Tracker's doors to MLflow, the store's first opening, and the resume checkpoint store, through the real MLflow client."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import mlflow
import pytest
import torch
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from suite.checkpoints import CheckpointStore
from suite.cli import main
from suite.seeding import restore_rng_state, rng_state, seed_everything
from suite.tracking import Tracker, ensure_experiment

FIRST_LAUNCH = """\
import os, sys, time
from pathlib import Path
from suite.tracking import ensure_experiment
ready = Path(sys.argv[2])
(ready / str(os.getpid())).touch()
while len(list(ready.iterdir())) < 2:  # both processes have imported everything: open the store together
    time.sleep(0.005)
print(ensure_experiment(sys.argv[1], "race"))  # what a launch does first: open the store, then its experiment
"""


@pytest.fixture
def tracker(tracking_uri: str) -> Tracker:
    return Tracker.create(tracking_uri, ensure_experiment(tracking_uri, "doors"), run_name="doors", tags={})


def test_checkpoint_store_round_trips_state_and_rng(tracker, tmp_path):
    store = CheckpointStore(tracker, tmp_path / "run")
    assert store.load() is None
    seed_everything(3)
    state = {"rng": rng_state(), "weights": torch.arange(4.0), "epoch": 2}
    expected = torch.rand(5)
    store.save(state)
    store.save({**state, "epoch": 3})  # overwritten, not appended
    back = CheckpointStore(tracker, tmp_path / "elsewhere").load()
    assert back["epoch"] == 3 and torch.equal(back["weights"], torch.arange(4.0))
    torch.rand(7)  # move the generators on, then put them back
    restore_rng_state(back["rng"])
    assert torch.equal(torch.rand(5), expected)


def test_checkpoint_store_loads_tensors_onto_the_device_asked_for(tracker, tmp_path):
    """``map_location``: a resumed run reads its checkpoint onto its own device, whatever device wrote it.

    Shown here with torch's ``meta`` device (no CUDA needed); generator states still restore
    from a copy on another device (``.cpu()`` in ``restore_rng_state``). ``tests/test_gpu.py``
    resumes real GPU checkpoints on the CPU and back.
    """
    store = CheckpointStore(tracker, tmp_path / "run")
    seed_everything(5)
    store.save({"rng": rng_state(), "model": {"weight": torch.ones(2, 3)}})
    expected = torch.rand(3)
    assert store.load()["model"]["weight"].device.type == "cpu"
    moved = store.load(map_location="meta")  # checked against its checksum on the CPU first, then moved
    assert moved["model"]["weight"].device.type == "meta" and moved["rng"]["torch"].device.type == "meta"
    restore_rng_state(store.load()["rng"])
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.slow
def test_logged_model_loads_back_quietly_with_its_extra_files(tracker, tmp_path, capfd):
    model = torch.nn.Linear(3, 2)
    extra = tmp_path / "tokenizer.json"
    extra.write_text('{"vocab": []}')
    model_id = tracker.log_model(model, extra_files=[extra])
    loaded = mlflow.pytorch.load_model(f"runs:/{tracker.run_id}/model")  # the path the README documents
    assert torch.equal(loaded.weight, model.weight)
    assert torch.equal(mlflow.pytorch.load_model(f"models:/{model_id}").weight, model.weight)
    client = MlflowClient(tracker.tracking_uri)
    logged = client.get_logged_model(model_id)  # an MLflow 3 logged model: the Models column, the Logged models tab
    assert (logged.name, logged.source_run_id, str(logged.status)) == ("model", tracker.run_id, "READY")
    assert logged.experiment_id == client.get_run(tracker.run_id).info.experiment_id
    assert [output.model_id for output in client.get_run(tracker.run_id).outputs.model_outputs] == [model_id]
    files = mlflow.artifacts.list_artifacts(artifact_uri=f"{logged.artifact_location}/extra_files")
    assert [info.path.rsplit("/", 1)[-1] for info in files] == ["tokenizer.json"]
    stderr = capfd.readouterr().err
    assert "WARNING" not in stderr, stderr  # no pickle notice, no torch version mismatch on load


def test_dataset_input_description_and_readers(tracker):
    tracker.log_dataset("spoken-commands", "f" * 64, "/data/corpus", profile={"utterances": 12})
    tracker.set_description("what this run is for")
    run = MlflowClient(tracker.tracking_uri).get_run(tracker.run_id)
    (dataset_input,) = run.inputs.dataset_inputs
    assert dataset_input.dataset.name == "spoken-commands" and dataset_input.dataset.digest == "f" * 36
    assert '"/data/corpus"' in dataset_input.dataset.source
    assert tracker.tags()["mlflow.note.content"] == "what this run is for"
    assert tracker.tags()["suite.pid"].isdigit() and tracker.status() == "RUNNING"


def test_metric_history_is_by_step_and_the_last_value_at_a_step_wins(tracker):
    for step, value in [(0, 0.5), (1, 0.7), (2, 0.8)]:
        tracker.log_metrics({"test.hit@10": value}, step=step)
    time.sleep(0.01)
    tracker.log_metrics({"test.hit@10": 0.75}, step=1)  # a resumed run logs step 1 again
    assert tracker.metric_history("test.hit@10") == [(0, 0.5), (1, 0.75), (2, 0.8)]
    assert tracker.metrics()["test.hit_at_10"] == 0.8
    assert tracker.metric_history("never.logged") == []


@pytest.mark.slow
def test_two_first_launches_on_a_new_store_do_not_race(tmp_path):
    uri = f"sqlite:///{tmp_path / 'fresh.db'}"
    (tmp_path / "ready").mkdir()
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", FIRST_LAUNCH, uri, str(tmp_path / "ready")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=180) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    (first, _), (second, _) = outputs
    assert first.strip() == second.strip() != ""  # both got the one experiment
    for _, stderr in outputs:
        assert stderr == "", stderr  # no "Creating initial MLflow database tables", no alembic lines
    assert sorted(e.name for e in MlflowClient(uri).search_experiments()) == ["Default", "race"]


def test_an_unreachable_tracking_server_is_one_line_within_seconds(toy_distribution, toy_spec, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with socket.socket() as silent:  # accepts connections (the kernel does), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        result = CliRunner().invoke(main, ["run", str(toy_spec), "-q", "--tracking-uri", uri])
        elapsed = time.monotonic() - started
    assert result.exit_code == 2, result.output
    assert elapsed < 10
    (line,) = result.output.strip().splitlines()
    assert line.startswith(f"error: tracking server {uri} is unreachable (timed out; waited at most 5 s)"), line
