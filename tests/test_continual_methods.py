"""Every continual method for one short experience sequence on tiny synthetic data, end to end.

Runs go through the registry objects and the runner exactly as the launcher calls them
(``MethodEntry.run(ctx)``), logging into a temporary SQLite MLflow store.
"""

import json
import math
from pathlib import Path

import mlflow
import mlflow.pytorch
import pytest
import torch
from continual_runs import suite_methods
from mlflow.tracking import MlflowClient

from scenarios.slu.tokenizer import Tokenizer
from suite import registry
from suite.api import NoOptions, RunContext, ScenarioEntry
from suite.continual.entries import SLU_SEQ2SEQ
from suite.continual.options import ContinualTrain, SLUModelOptions
from suite.continual.synthetic import build_synthetic_slu
from suite.tracking import Tracker

torch.set_num_threads(1)

SYNTHETIC = ScenarioEntry(
    name="synthetic-slu",
    family="continual",
    options=NoOptions,
    build=lambda options, build: build_synthetic_slu(per_class=(16, 2, 6), seed=build.seed),
)
METHODS = suite_methods("continual")
REQUIRED_OPTIONS = {"combine": {"parts": {"coconut": {}, "skd": {}}}}
"""Options a method cannot run without (the methods it combines)."""
SUMMARY_KEYS = {"avg_acc", "last_acc", "forgetting", "bwt", "wer"}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root}/m.db"
    client = MlflowClient(uri)
    experiment = client.create_experiment("t", artifact_location=(root / "artifacts").as_uri())
    return uri, client, experiment, root


def run_method(store, method, seed=0, epochs=6, method_options=None, **train):
    uri, client, experiment, root = store
    run = client.create_run(experiment)
    entry = registry.get("method", method)
    options = {"replay": {"size": 24}} if "replay" in entry.options.model_fields else {}
    options.update(REQUIRED_OPTIONS.get(method, {}))
    options.update(method_options or {})
    run_dir = Path(root) / run.info.run_id
    run_dir.mkdir()
    context = RunContext(
        seed=seed,
        scenario_entry=SYNTHETIC,
        scenario_options=NoOptions(),
        model_entry=SLU_SEQ2SEQ,
        model_options=SLUModelOptions(preset="tiny"),
        method_options=entry.options.model_validate(options),
        train_options=ContinualTrain(epochs=epochs, batch_size=16, lr=3e-3, num_threads=1, echo=False, **train),
        tracker=Tracker(uri, run.info.run_id),
        run_dir=run_dir,
        cache_dir=run_dir,
        quiet=True,
    )
    return entry.run(context), run.info.run_id


@pytest.mark.parametrize("method", METHODS)
def test_each_method_runs_and_logs(store, method):
    summary, run_id = run_method(store, method)
    assert set(summary) >= SUMMARY_KEYS
    for key in ("avg_acc", "last_acc"):
        assert 0.0 <= summary[key] <= 100.0
    assert summary["avg_acc"] >= summary["last_acc"] - 1e-9 or method == "joint"
    _, client, _, _ = store
    history = client.get_metric_history(run_id, "avg_acc_seen")
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"accuracy_matrix.json", "accuracy_matrix.png", "tokenizer.json"} <= artifacts
    (output,) = client.get_run(run_id).outputs.model_outputs  # the final model: an MLflow 3 logged model of the run
    assert client.get_logged_model(output.model_id).name == "model"
    epochs = [m.step for m in client.get_metric_history(run_id, "train.loss")]
    if method == "joint":
        assert [m.step for m in history] == [0]
        assert summary["forgetting"] == 0.0
        assert epochs == list(range(6))  # one pass of 6 epochs over everything
    else:
        assert [m.step for m in history] == [0, 1, 2]
        assert history[-1].value == pytest.approx(summary["last_acc"])
        assert epochs == list(range(18))  # 6 epochs x 3 experiences, one global epoch count


def test_accuracy_matrix_artifact_and_the_logged_model_gives_the_last_row_back(store, tmp_path, monkeypatch):
    _summary, run_id = run_method(store, "replay")
    uri, client, _, _ = store
    matrix = json.loads(Path(client.download_artifacts(run_id, "accuracy_matrix.json", str(tmp_path))).read_text())
    rows = matrix["matrix"]
    assert len(rows) == 3 and all(len(row) == 3 for row in rows)
    assert rows[0][1] is None and rows[2][0] is not None  # future experiences not evaluated
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    model = mlflow.pytorch.load_model(f"runs:/{run_id}/model")
    folder = Path(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/model", dst_path=str(tmp_path / "model")))
    tokenizer = Tokenizer.load(next(folder.rglob("tokenizer.json")))
    slu = build_synthetic_slu(per_class=(16, 2, 6), seed=0)
    assert tokenizer == slu.tokenizer
    for j, experience in enumerate(slu.benchmark.test_stream):  # the loaded model decodes as the run's final evaluation did
        x, _, x_lens, tokens, _ = slu.collate_fn([experience.dataset[i] for i in range(len(experience.dataset))])
        decoded = model.greedy_decode(x, x_lens, 32, tokenizer.bos_id, tokenizer.eos_id)
        assert 100.0 * float((decoded[:, 1] == tokens[:, 1]).float().mean()) == pytest.approx(rows[2][j])


def test_same_seed_same_metrics(store):
    first, _ = run_method(store, "coconut", seed=3, epochs=3)
    second, _ = run_method(store, "coconut", seed=3, epochs=3)
    for key in SUMMARY_KEYS:
        assert first[key] == second[key], key


def test_replay_beats_finetune_and_finetune_forgets(store):
    finetune, _ = run_method(store, "finetune", epochs=10)
    replay, _ = run_method(store, "replay", epochs=10)
    assert finetune["forgetting"] > 50.0
    assert replay["avg_acc"] > finetune["avg_acc"] + 15.0
    assert replay["last_acc"] > finetune["last_acc"] + 15.0


@pytest.mark.parametrize("policy", ["class_balanced", "herding"])
def test_buffer_policies_run(store, policy):
    summary, _ = run_method(store, "replay", epochs=2, method_options={"replay": {"size": 0.25, "policy": policy}})
    assert not math.isnan(summary["avg_acc"])


def test_coconut_without_its_losses_is_replay_exactly_so_methods_pair_by_seed(store):
    """Same seed, same data order and dropout: COCONUT with both weights at 0 trains exactly as replay."""
    replay, replay_id = run_method(store, "replay", seed=2, epochs=2)
    off = {"nspt": {"weight": 0.0}, "mm": {"weight": 0.0}}
    coconut, coconut_id = run_method(store, "coconut", seed=2, epochs=2, method_options=off)
    for key in SUMMARY_KEYS:
        assert coconut[key] == replay[key], key
    _, client, _, _ = store
    losses = [[m.value for m in client.get_metric_history(run_id, "train.loss")] for run_id in (replay_id, coconut_id)]
    assert losses[0] == losses[1] and len(losses[0]) == 6
