"""`suite run` end to end with a third-party plugin: MLflow records, failures, Ctrl-C, seeds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import torch
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from suite.cli import main


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def runs_of(experiment: str) -> list:
    return mlflow.search_runs(experiment_names=[experiment], output_format="list")


def children(runs: list) -> list:
    return sorted((r for r in runs if r.data.tags.get("suite.kind") == "child"), key=lambda r: int(r.data.tags["suite.seed"]))


def test_run_is_found_by_plain_mlflow(toy_distribution, tracking_uri, toy_spec):
    result = invoke("run", str(toy_spec), "-q", "-o", "train.lr=0.05")
    assert result.exit_code == 0, result.output
    runs = runs_of("toy-exp")
    parent = next(r for r in runs if r.data.tags["suite.kind"] == "parent")
    kids = children(runs)
    assert len(kids) == 2 and {r.data.tags["mlflow.parentRunId"] for r in kids} == {parent.info.run_id}
    assert all(r.info.status == "FINISHED" for r in runs)
    first = kids[0]
    assert first.data.params["seed"] == "0"
    assert first.data.params["train.lr"] == "0.05"
    assert first.data.params["scenario.size"] == "64"
    assert first.data.params["method.name"] == "toy-fit"
    history = MlflowClient(tracking_uri).get_metric_history(first.info.run_id, "loss")
    assert [m.step for m in history] == [0, 1, 2, 3]
    assert history[-1].value < history[0].value
    assert first.data.metrics["final_loss"] == pytest.approx(first.data.metrics["final_loss"])
    assert "weight_norm" in first.data.metrics
    for tag in ("suite.command", "suite.version.mlflow", "suite.version.torch", "suite.host"):
        assert tag in first.data.tags
    assert "train.lr=0.05" in first.data.tags["suite.command"]
    spec_path = mlflow.artifacts.download_artifacts(run_id=first.info.run_id, artifact_path="spec.yaml")
    reloaded = Path(spec_path).read_text()
    assert "seeds:\n- 0\n" in reloaded and "lr: 0.05" in reloaded
    table = result.output
    assert "| point | n | final_loss | weight_norm |" in table and "toy-fit | 2 |" in table


def test_child_spec_relaunches_to_the_same_metrics(toy_distribution, tracking_uri, toy_spec, tmp_path):
    assert invoke("run", str(toy_spec), "-q", "-o", "seeds=[5]").exit_code == 0
    first = children(runs_of("toy-exp"))[0]
    spec_file = Path(
        mlflow.artifacts.download_artifacts(run_id=first.info.run_id, artifact_path="spec.yaml", dst_path=str(tmp_path / "dl"))
    )
    assert invoke("run", str(spec_file), "-q").exit_code == 0
    again = [r for r in children(runs_of("toy-exp")) if r.info.run_id != first.info.run_id]
    assert len(again) == 1
    assert again[0].data.metrics == first.data.metrics


def test_failure_halfway_ends_failed_and_keeps_metrics(toy_distribution, tracking_uri, toy_spec):
    result = invoke("run", str(toy_spec), "-q", "-o", "method.fail_at_step=2")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("error: run 'toy-fit seed=0'") and "toy method failed at step 2" in lines[-1]
    assert "Traceback" not in result.output
    runs = runs_of("toy-exp")
    kids = children(runs)
    assert [r.info.status for r in kids] == ["FAILED", "KILLED"]  # fail fast: seed 1 never ran
    assert "toy method failed at step 2" in kids[0].data.tags["suite.error"]
    history = MlflowClient(tracking_uri).get_metric_history(kids[0].info.run_id, "loss")
    assert [m.step for m in history] == [0, 1]
    parent = next(r for r in runs if r.data.tags["suite.kind"] == "parent")
    assert parent.info.status == "FAILED"


def test_debug_shows_the_traceback(toy_distribution, toy_env, toy_spec):
    command = [sys.executable, "-m", "suite.cli", "run", str(toy_spec), "-q", "--debug", "-o", "method.fail_at_step=1"]
    done = subprocess.run(command, env=toy_env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "toy method failed at step 1" in done.stderr


def test_interrupt_ends_killed(toy_distribution, tracking_uri, toy_spec):
    result = invoke("run", str(toy_spec), "-q", "-o", "method.interrupt_at_step=3")
    assert result.exit_code == 130
    assert "interrupted" in result.output
    runs = runs_of("toy-exp")
    assert sorted(r.info.status for r in runs) == ["KILLED", "KILLED", "KILLED"]
    first = children(runs)[0]
    assert len(MlflowClient(tracking_uri).get_metric_history(first.info.run_id, "loss")) == 3


def test_same_seed_same_metrics(toy_distribution, tracking_uri, toy_spec):
    assert invoke("run", str(toy_spec), "-q").exit_code == 0
    assert invoke("run", str(toy_spec), "-q").exit_code == 0
    kids = children(runs_of("toy-exp"))
    by_seed: dict[str, list] = {}
    for run in kids:
        by_seed.setdefault(run.data.tags["suite.seed"], []).append(run.data.metrics)
    assert by_seed["0"][0] == by_seed["0"][1]
    assert by_seed["0"][0] != by_seed["1"][0]


def test_state_dict_checkpoints_load_with_weights_only(tracking_uri, tmp_path):
    from suite.tracking import Tracker, get_or_create_experiment

    client = MlflowClient(tracking_uri)
    run = client.create_run(get_or_create_experiment(client, "ckpt", tracking_uri))
    tracker = Tracker(tracking_uri, run.info.run_id)
    state = {"model": torch.nn.Linear(3, 2).state_dict(), "epoch": 4}
    tracker.log_state_dict(state, "last.pt")
    path = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="checkpoints/last.pt", dst_path=str(tmp_path / "dl"))
    loaded = torch.load(path, weights_only=True)
    assert loaded["epoch"] == 4 and torch.equal(loaded["model"]["weight"], state["model"]["weight"])


def test_default_store_is_sqlite_in_the_working_directory(toy_distribution, toy_env, toy_spec, tmp_path):
    del toy_env["MLFLOW_TRACKING_URI"]
    done = subprocess.run(
        [sys.executable, "-m", "suite.cli", "run", str(toy_spec), "-q", "-o", "seeds=[0]"],
        env=toy_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "mlflow.db").is_file()
    assert (tmp_path / "mlartifacts").is_dir() and not (tmp_path / "mlruns").exists()
