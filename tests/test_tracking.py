"""The Tracker's doors to MLflow and the resume checkpoint store, through the real MLflow client."""

from __future__ import annotations

import mlflow
import pytest
import torch
from mlflow.tracking import MlflowClient

from suite.checkpoints import CheckpointStore
from suite.seeding import restore_rng_state, rng_state, seed_everything
from suite.tracking import Tracker, get_or_create_experiment


@pytest.fixture
def tracker(tracking_uri: str) -> Tracker:
    client = MlflowClient(tracking_uri)
    run = client.create_run(get_or_create_experiment(client, "doors", tracking_uri))
    return Tracker(tracking_uri, run.info.run_id)


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


def test_logged_model_loads_back_with_its_extra_files(tracker, tmp_path):
    model = torch.nn.Linear(3, 2)
    extra = tmp_path / "tokenizer.json"
    extra.write_text('{"vocab": []}')
    tracker.log_model(model, extra_files=[extra])
    loaded = mlflow.pytorch.load_model(f"runs:/{tracker.run_id}/model")
    assert torch.equal(loaded.weight, model.weight)
    names = [info.path for info in tracker.client.list_artifacts(tracker.run_id, "model/extra_files")]
    assert names == ["model/extra_files/tokenizer.json"]


def test_dataset_input_and_description(tracker):
    tracker.log_dataset("spoken-commands", "f" * 64, "/data/corpus", profile={"utterances": 12})
    tracker.set_description("what this run is for")
    run = tracker.client.get_run(tracker.run_id)
    (dataset_input,) = run.inputs.dataset_inputs
    assert dataset_input.dataset.name == "spoken-commands" and dataset_input.dataset.digest == "f" * 36
    assert '"/data/corpus"' in dataset_input.dataset.source
    assert run.data.tags["mlflow.note.content"] == "what this run is for"
