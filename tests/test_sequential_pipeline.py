"""The RecBole pipeline's gates and outputs: quoted config strings, a clean argv, scoped warnings,
devices, the train section's grammar, one line per epoch, tuning runs that never read test data,
and the dataset and the best model as MLflow objects.

End-to-end runs use a synthetic 40-user dataset (a few seconds each).
"""

from __future__ import annotations

import io
import json
import os
import sys
import warnings
from pathlib import Path

import mlflow.pytorch
import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient
from pydantic import ValidationError
from recbole.config import Config
from recbole.model.sequential_recommender import SASRec
from run_trackers import new_run_tracker

from scenarios.recsys.entries import RECBOLE
from suite.api import NoOptions, RunContext
from suite.checkpoints import CheckpointStore
from suite.devices import check_device
from suite.errors import SpecError
from suite.seeding import seed_everything
from suite.sequential import entries as P
from suite.sequential import pipeline
from suite.sequential.checkpointing import WeightsOnlyCheckpoints
from suite.sequential.recbole_strings import guard_config
from suite.sequential.train_options import SequentialTrainOptions

PAYLOAD = "__import__('os').system('touch PWNED') or 'x'"
SMALL = {"hidden_size": 16, "inner_size": 32, "n_layers": 1, "n_heads": 2}


def write_ring_dataset(folder: Path, name: str = "ring", users: int = 40) -> Path:
    """``users`` users walking a 30-item ring with small random strides: learnable, deterministic."""
    rng = np.random.default_rng(12)
    target = folder / name / f"{name}.inter"
    target.parent.mkdir(parents=True)
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    for user in range(users):
        item = int(rng.integers(0, 30))
        for step in range(int(rng.integers(6, 15))):
            lines.append(f"u{user}\ti{item}\t{1000 * user + step}")
            item = (item + int(rng.integers(1, 4))) % 30
    target.write_text("\n".join(lines) + "\n")
    return target.parent


def _context(tmp: Path, uri: str, data: Path, evaluation: str = "test", quiet: bool = True, epochs: int = 2) -> RunContext:
    tracker = new_run_tracker(uri, tmp, "seq")
    run_dir = tmp / f"run-{tracker.run_id[:8]}"
    run_dir.mkdir()
    train = SequentialTrainOptions(epochs=epochs, train_batch_size=64, eval_batch_size=128, topk=[5, 10], num_threads=1)
    return RunContext(
        seed=0,
        scenario_entry=RECBOLE,
        scenario_options=RECBOLE.options(path=str(data), max_seq_length=10),
        model_entry=P.SASREC,
        model_options=P.SASRecOptions(**SMALL),
        method_options=NoOptions(),
        train_options=train,
        tracker=tracker,
        run_dir=run_dir,
        cache_dir=tmp / "cache",
        quiet=quiet,
        checkpoints=CheckpointStore(tracker, run_dir),
        evaluation=evaluation,
    )


# -- the last gate before RecBole's Config ----------------------------------------------


def _config_dict(**changes: object) -> dict:
    base = {
        "dataset": "ml-100k",
        "data_path": "/data",
        "USER_ID_FIELD": "user_id",
        "user_inter_num_interval": "[5,inf)",
        "valid_metric": "MRR@10",
        "metrics": ["Hit", "MRR"],
        "load_col": {"inter": ["user_id", "item_id"]},
        "loss_type": "CE",
        "meta_optimization": "two-step",
        "gpu_id": "",
    }
    return {**base, **changes}


def test_guard_quotes_every_string_and_recbole_reads_back_exactly_the_string() -> None:
    config_dict = _config_dict()
    guarded = guard_config(config_dict)
    assert guarded["valid_metric"] == "'MRR@10'" and guarded["metrics"] == ["Hit", "MRR"]
    converted = Config._convert_config_dict(None, dict(guarded))  # RecBole's own eval of config strings
    assert converted == config_dict


@pytest.mark.parametrize(
    "key", ["dataset", "data_path", "USER_ID_FIELD", "user_inter_num_interval", "valid_metric", "loss_type", "gpu_id", "some_model_key"]
)
def test_guard_refuses_a_payload_in_any_string_key(key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError, match=rf"RecBole config key '{key}' = .*refused \(RecBole would eval it\)"):
        guard_config(_config_dict(**{key: PAYLOAD}))
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize(("key", "value"), [("metrics", ["Hit", PAYLOAD]), ("load_col", {"inter": ["user_id", PAYLOAD]})])
def test_guard_checks_the_names_nested_in_lists_and_dicts(key: str, value: object) -> None:
    with pytest.raises(SpecError, match=rf"RecBole config key '{key}'"):
        guard_config(_config_dict(**{key: value}))


def _sasrec_config_dict(**changes: object) -> dict:
    return {"dataset": "ml-100k", "loss_type": "CE", "train_neg_sample_args": None, "gpu_id": "", "seed": 0, **changes}


def test_recbole_sees_an_empty_command_line_and_gives_the_environment_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    argv = ["suite", "run", "spec.yaml", f"--learning_rate={PAYLOAD}", "-o", "train.epochs=1"]
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5")
    config = pipeline.recbole_config(SASRec, _sasrec_config_dict(gpu_id="1", use_gpu=True), torch.device("cuda", 1))
    assert not (tmp_path / "PWNED").exists()  # RecBole evals --key=value arguments: it saw none
    assert config["learning_rate"] == 0.001  # RecBole's default, not the command line's
    assert config["device"] == torch.device("cuda", 1)  # train.device: cuda:1, set explicitly
    assert sys.argv == argv and os.environ["CUDA_VISIBLE_DEVICES"] == "5"
    assert not [record for record in caplog.records if "will not be used in RecBole" in record.getMessage()]


# -- the train section's grammar ----------------------------------------------------------


@pytest.mark.parametrize(
    ("device", "keys", "target"),
    [
        ("cpu", {"use_gpu": False, "gpu_id": ""}, torch.device("cpu")),
        ("cuda", {"use_gpu": True, "gpu_id": "0"}, torch.device("cuda")),
        ("cuda:3", {"use_gpu": True, "gpu_id": "3"}, torch.device("cuda", 3)),
    ],
)
def test_devices_map_to_recbole_keys_and_a_torch_device(device: str, keys: dict, target: torch.device) -> None:
    train = SequentialTrainOptions(device=device)
    assert train.recbole_device_keys() == keys and train.torch_device() == target


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "cuda:", "cpu:0", "CUDA", PAYLOAD])
def test_bad_devices_are_refused(device: str) -> None:
    with pytest.raises(ValidationError, match="expected 'cpu', 'cuda', 'cuda:N' or 'auto'"):
        SequentialTrainOptions(device=device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_a_cuda_device_on_a_machine_without_one_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="train.device: cuda:1, but torch sees no CUDA device"):
        check_device(SequentialTrainOptions(device="cuda:1").device)


def test_valid_metric_grammar_and_registry() -> None:
    train = SequentialTrainOptions(valid_metric="MRR@10", metrics=["Hit", "NDCG"])
    assert train.recbole_metrics() == ["Hit", "NDCG", "MRR"]  # the early-stopping metric is always computed
    assert SequentialTrainOptions(valid_metric="GAUC", metrics=["GAUC"]).recbole_metrics() == ["GAUC"]
    refused = {
        "NDCG@50": r"cut-off 50 is not in topk \[5, 10, 20\]",
        "NDCG": "needs a cut-off",
        "GAUC@10": "has no cut-off",
        "AUC": "ranking metrics",  # a value metric: no meaning under full ranking
        "Recal@10": "ranking metrics",
        "NDCG@10; import os": "expected a metric",
    }
    for value, message in refused.items():
        with pytest.raises(ValidationError, match=message):
            SequentialTrainOptions(valid_metric=value)
    with pytest.raises(ValidationError, match="ranking metrics"):
        SequentialTrainOptions(metrics=["Hit", "Hits"])
    with pytest.raises(ValidationError, match="distinct positive"):
        SequentialTrainOptions(topk=[10, 10])


# -- terminal -------------------------------------------------------------------------


def test_epoch_line_says_epoch_loss_valid_metric_and_seconds(tmp_path: Path) -> None:
    logged: list[tuple[dict, int]] = []

    class Recorder:
        def log_metrics(self, metrics: dict, step: int | None = None) -> None:
            logged.append((metrics, step))

    stream = io.StringIO()
    log = pipeline.EpochLog(Recorder(), "MRR@10", quiet=False, stream=stream, name="sasrec seed=1")
    log("train", 3, {"loss": 6.81234})
    log("valid", 3, {"mrr@10": 0.04123, "hit@10": 0.2})
    line = stream.getvalue()
    assert line.startswith("sasrec seed=1 epoch   3  train loss 6.8123  valid mrr@10 0.0412  (") and line.endswith(" s)\n")
    assert logged[1] == ({"valid_epoch.mrr@10": 0.04123, "valid_epoch.hit@10": 0.2}, 3)
    quiet = io.StringIO()
    pipeline.EpochLog(Recorder(), "MRR@10", quiet=True, stream=quiet)("valid", 0, {"mrr@10": 0.1})
    assert quiet.getvalue() == ""


# -- whole runs -----------------------------------------------------------------------


@pytest.mark.slow
def test_a_run_logs_dataset_and_best_model_and_keeps_the_terminal_clean(
    tmp_path: Path, tracking_uri: str, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["suite", "run", "x.yaml", "-q"])
    data = write_ring_dataset(tmp_path / "data")
    ctx = _context(tmp_path, tracking_uri, data, quiet=False)
    capfd.readouterr()
    seed_everything(0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        filters = list(warnings.filters)
        summary = P.RECBOLE_TRAINER.run(ctx)
        assert warnings.filters == filters  # the pipeline's filters were scoped to its calls
    err = capfd.readouterr().err
    assert not [w for w in caught if "recbole" in w.filename], [str(w.message) for w in caught]
    assert "FutureWarning" not in err
    assert not [record for record in caplog.records if "will not be used in RecBole" in record.getMessage()]
    name = MlflowClient(tracking_uri).get_run(ctx.tracker.run_id).info.run_name
    counts, *epochs = [line[len(name) :] for line in err.splitlines() if line.startswith(name)]
    assert [line.split()[:2] for line in epochs] == [["epoch", "0"], ["epoch", "1"]]  # each epoch line names its run
    kept = json.loads(MlflowClient(tracking_uri).get_run(ctx.tracker.run_id).inputs.dataset_inputs[0].dataset.profile)
    shown = f"{kept['users']} users, {kept['items']} items, {kept['interactions']} interactions"
    assert counts == f": ring: {shown} (after RecBole's filters)"  # RecBole's quick start counts, first

    client = MlflowClient(tracking_uri)
    run = client.get_run(ctx.tracker.run_id)
    assert set(summary) == {f"test.{m}@{k}" for m in ("hit", "ndcg") for k in (5, 10)}
    (dataset_input,) = run.inputs.dataset_inputs
    scenario = RECBOLE.build(ctx.scenario_options, ctx.build_context)
    profile = json.loads(dataset_input.dataset.profile)
    assert dataset_input.dataset.name == "ring" and dataset_input.dataset.digest == scenario.dataset.digest[:36]
    # the scenario's own account of RecBole's filters equals what RecBole kept
    assert profile == {"users": scenario.dataset.users, "items": scenario.dataset.items, "interactions": scenario.dataset.interactions}
    assert profile["users"] == 40 and int(run.data.params["recbole.interactions"]) == profile["interactions"]

    best = torch.load(client.download_artifacts(run.info.run_id, "checkpoints/best.pth", str(tmp_path)), weights_only=True)
    (output,) = run.outputs.model_outputs  # the best model, an MLflow 3 logged model of the run
    model = mlflow.pytorch.load_model(client.get_logged_model(output.model_id).artifact_location)
    assert isinstance(model, SASRec)
    assert all(torch.equal(value, best["model"][key]) for key, value in model.state_dict().items())
    history = client.get_metric_history(run.info.run_id, "valid_epoch.ndcg_at_10")
    assert sorted(point.step for point in history) == [0, 1]
    assert run.data.metrics["best_valid.ndcg_at_10"] == max(point.value for point in history)


@pytest.mark.slow
def test_a_tuning_run_never_evaluates_test_and_reports_the_best_epochs_validation(
    tmp_path: Path, tracking_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    evaluated: list[int] = []
    evaluate = WeightsOnlyCheckpoints.evaluate

    def counting(self, eval_data, *args, **kwargs):  # type: ignore[no-untyped-def]
        evaluated.append(len(eval_data))
        return evaluate(self, eval_data, *args, **kwargs)

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the test split was evaluated in a tuning run")

    monkeypatch.setattr(WeightsOnlyCheckpoints, "evaluate", counting)
    monkeypatch.setattr(pipeline, "evaluate_test", never)
    data = write_ring_dataset(tmp_path / "data")
    ctx = _context(tmp_path, tracking_uri, data, evaluation="valid", epochs=3)
    summary = P.RECBOLE_TRAINER.run(ctx)
    assert len(evaluated) == 3  # one validation per epoch, nothing else
    assert set(summary) == {f"valid.{m}@{k}" for m in ("hit", "ndcg") for k in (5, 10)}
    client = MlflowClient(tracking_uri)
    metrics = client.get_run(ctx.tracker.run_id).data.metrics
    assert not [key for key in metrics if key.startswith(("test.", "best_valid."))]
    history = client.get_metric_history(ctx.tracker.run_id, "valid_epoch.ndcg_at_10")
    best_epoch = max(history, key=lambda point: (point.value, point.step)).step  # RecBole keeps the later of equal scores
    for key, value in summary.items():
        name = key.removeprefix("valid.").replace("@", "_at_")
        assert metrics[f"valid.{name}"] == value
        epoch_values = {point.step: point.value for point in client.get_metric_history(ctx.tracker.run_id, f"valid_epoch.{name}")}
        assert value == epoch_values[best_epoch]
