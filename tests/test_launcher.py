"""`suite run` and `suite resume` end to end with a third-party plugin: MLflow records, exit codes, signals, resume."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient
from processes import suite_process

from suite import spec as specs
from suite.cli import main
from suite.launcher import launch
from suite.tracking import process_state, process_tags

PAUSE_ENV = "SUITE_TOY_PAUSE_AT_STEP"


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def runs_of(experiment: str) -> list:
    return mlflow.search_runs(experiment_names=[experiment], output_format="list")


def children(runs: list) -> list:
    kids = [r for r in runs if r.data.tags.get("suite.kind") == "child"]
    return sorted(kids, key=lambda r: (r.info.start_time, r.data.tags["suite.seed"]))


def parent_of(runs: list):
    (parent,) = [r for r in runs if r.data.tags.get("suite.kind") == "parent"]
    return parent


def wait_for_pause(process: subprocess.Popen, timeout: float = 120) -> list[str]:
    """Read stderr until the toy method says it is paused; the lines read so far."""
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("toy: paused at step"):
            return lines
    process.kill()
    raise AssertionError("the run never paused: " + "".join(lines)[-3000:])


@pytest.mark.slow
def test_run_is_found_by_plain_mlflow(toy_distribution, tracking_uri, toy_spec):
    result = invoke("run", str(toy_spec), "-q", "-o", "train.lr=0.05")
    assert result.exit_code == 0, result.output
    runs = runs_of("toy-exp")
    parent, kids = parent_of(runs), children(runs)
    assert len(kids) == 2 and {r.data.tags["mlflow.parentRunId"] for r in kids} == {parent.info.run_id}
    assert all(r.info.status == "FINISHED" for r in runs)
    first, second = kids
    assert first.data.params["seed"] == "0" and second.data.params["seed"] == "1"
    assert first.data.params["train.lr"] == "0.05"
    assert first.data.params["scenario.size"] == "64"
    assert first.data.params["method.name"] == "toy-fit"
    history = MlflowClient(tracking_uri).get_metric_history(first.info.run_id, "loss")
    assert [m.step for m in history] == [0, 1, 2, 3]
    assert history[-1].value < history[0].value
    assert first.data.metrics["final_loss"] == history[-1].value
    assert "weight_norm" in first.data.metrics
    for tag in ("suite.command", "suite.version.mlflow", "suite.version.torch", "suite.host", "suite.pid", "suite.pid_started"):
        assert tag in first.data.tags
    assert "train.lr=0.05" in first.data.tags["suite.command"]
    assert first.data.tags["toy.quiet"] == "True" and first.data.tags["toy.evaluation"] == "test"
    spec_path = mlflow.artifacts.download_artifacts(run_id=first.info.run_id, artifact_path="spec.yaml")
    reloaded = Path(spec_path).read_text()
    assert "seeds:\n- 0\n" in reloaded and "lr: 0.05" in reloaded
    table = result.output
    header, _, row = (line.split("|")[1:-1] for line in table.splitlines()[1:4])
    assert [cell.strip() for cell in header] == ["label", "n", "final_loss", "weight_norm"]
    assert [cell.strip() for cell in row[:2]] == ["toy-fit", "2"]
    hint = re.fullmatch(r"open the results: suite ui --tracking-uri (\S+)  \(table: (.+)\)", table.splitlines()[-1])
    assert hint and hint[1] == tracking_uri  # the launch ends with the command that opens it
    assert Path(hint[2]).read_text().startswith("| label ") and Path(hint[2]).name == "results.md"
    assert parent.data.metrics["final_loss"] == pytest.approx(sum(r.data.metrics["final_loss"] for r in kids) / 2)  # not an empty row


@pytest.mark.slow
def test_runs_carry_mlflow_metadata_and_their_own_start_time(toy_distribution, tracking_uri, toy_spec):
    assert invoke("run", str(toy_spec), "-q").exit_code == 0
    runs = runs_of("toy-exp")
    parent, (first, second) = parent_of(runs), children(runs)
    for run in (parent, first, second):
        tags = run.data.tags
        assert tags["mlflow.note.content"] == "toy regression"  # the spec's description
        assert tags["mlflow.source.name"] == str(toy_spec) and tags["mlflow.source.type"] == "LOCAL"
        assert tags["mlflow.user"] == run.info.user_id != "unknown"
        assert len(tags["mlflow.source.git.commit"]) == 40
    experiment = mlflow.get_experiment_by_name("toy-exp")
    assert experiment.tags["mlflow.note.content"] == "toy regression"
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"  # MLflow 3 opens the runs table
    # a child is opened when it starts: seed 1's run starts after seed 0's ended
    assert second.info.start_time >= first.info.end_time
    assert first.info.start_time >= parent.info.start_time
    assert first.info.run_name == "toy-fit seed=0"


@pytest.mark.slow
def test_child_spec_relaunches_to_the_same_metrics(toy_distribution, tracking_uri, toy_spec, tmp_path):
    assert invoke("run", str(toy_spec), "-q", "-o", "seeds=5").exit_code == 0
    first = children(runs_of("toy-exp"))[0]
    spec_file = Path(
        mlflow.artifacts.download_artifacts(run_id=first.info.run_id, artifact_path="spec.yaml", dst_path=str(tmp_path / "dl"))
    )
    assert invoke("run", str(spec_file), "-q").exit_code == 0
    again = [r for r in children(runs_of("toy-exp")) if r.info.run_id != first.info.run_id]
    assert len(again) == 1
    assert again[0].data.metrics == first.data.metrics


@pytest.mark.slow
def test_failure_halfway_ends_failed_keeps_metrics_and_logs_the_results(toy_distribution, tracking_uri, toy_spec, tmp_path):
    result = invoke("run", str(toy_spec), "-q", "-o", "method.fail_at_step=2")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("error: run 'toy-fit seed=0'") and "toy method failed at step 2" in lines[-1]
    assert "Traceback" not in result.output
    runs = runs_of("toy-exp")
    kids = children(runs)
    assert [r.info.status for r in kids] == ["FAILED"]  # fail fast: seed 1 was never opened
    assert "toy method failed at step 2" in kids[0].data.tags["suite.error"]
    history = MlflowClient(tracking_uri).get_metric_history(kids[0].info.run_id, "loss")
    assert [m.step for m in history] == [0, 1]
    parent = parent_of(runs)
    assert parent.info.status == "FAILED" and parent.data.tags["suite.error"] == "1 of 1 child runs failed"
    logged = mlflow.artifacts.download_artifacts(run_id=parent.info.run_id, artifact_path="results.json", dst_path=str(tmp_path))
    (row,) = json.loads(Path(logged).read_text())
    assert row["run_id"] == kids[0].info.run_id and "toy method failed at step 2" in row["error"]


@pytest.mark.slow
def test_an_input_error_found_inside_a_run_is_a_failed_run(toy_distribution, tracking_uri, toy_spec):
    result = invoke("run", str(toy_spec), "-q", "-o", "method.fail_at_step=1", "-o", "method.fail_with=data")
    assert result.exit_code == 1, result.output  # exit 2 means no run; this one exists
    assert "toy method failed at step 1" in result.output.strip().splitlines()[-1]
    assert [r.info.status for r in children(runs_of("toy-exp"))] == ["FAILED"]


def test_every_check_runs_on_every_grid_point_before_any_run(toy_distribution, tracking_uri, toy_spec, tmp_path):
    result = invoke("run", str(toy_spec), "-q", "-g", "method.batch_size=[8,100]")  # run takes -g too; 100 > scenario.size 64
    assert result.exit_code == 2, result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith(f"error: {toy_spec} (grid point method.batch_size=100): method.batch_size 100 is larger than scenario.size")
    missing = invoke("sweep", str(toy_spec), "-q", "-g", f"scenario.data_file=[null,{tmp_path / 'nope.csv'}]")
    assert missing.exit_code == 2 and "toy data file" in missing.output and "not found" in missing.output
    assert not (tmp_path / "mlflow.db").exists() or mlflow.search_runs(search_all_experiments=True, output_format="list") == []


@pytest.mark.slow
def test_debug_shows_the_traceback(toy_distribution, toy_env, toy_spec):
    command = [sys.executable, "-m", "suite.cli", "run", str(toy_spec), "-q", "--debug", "-o", "method.fail_at_step=1"]
    done = subprocess.run(command, env=toy_env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "toy method failed at step 1" in done.stderr


@pytest.mark.slow
def test_interrupt_ends_killed(toy_distribution, tracking_uri, toy_spec):
    result = invoke("run", str(toy_spec), "-q", "-o", "method.interrupt_at_step=3")
    assert result.exit_code == 130
    assert "interrupted (Ctrl-C)" in result.output
    runs = runs_of("toy-exp")
    assert sorted(r.info.status for r in runs) == ["KILLED", "KILLED"]  # parent and seed 0; seed 1 never opened
    first = children(runs)[0]
    assert len(MlflowClient(tracking_uri).get_metric_history(first.info.run_id, "loss")) == 3


@pytest.mark.slow
def test_sigterm_ends_the_runs_killed_with_exit_143(toy_distribution, toy_env, toy_spec, tmp_path):
    toy_env[PAUSE_ENV] = "1"
    process = suite_process(["run", str(toy_spec), "-q"], toy_env, tmp_path)
    wait_for_pause(process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr[-2000:]
    assert stderr.strip().splitlines()[-1] == "terminated (SIGTERM): open runs were marked KILLED"
    runs = runs_of("toy-exp")
    assert sorted(r.info.status for r in runs) == ["KILLED", "KILLED"]
    child = children(runs)[0]
    assert child.data.tags["suite.error"] == "terminated (SIGTERM)"
    assert [m.step for m in MlflowClient().get_metric_history(child.info.run_id, "loss")] == [0, 1]


@pytest.mark.slow
def test_sigkilled_run_is_found_stale_closed_by_the_next_launch_and_resumed_exactly(
    toy_distribution, toy_env, toy_spec, tracking_uri, tmp_path, monkeypatch
):
    monkeypatch.delenv(PAUSE_ENV, raising=False)
    point = ["-o", "seeds=[3]", "-o", "method.steps=6", "-o", "method.batch_size=8"]
    killed = suite_process(["run", str(toy_spec), "-q", *point], {**toy_env, PAUSE_ENV: "2"}, tmp_path)
    wait_for_pause(killed)
    killed.kill()  # SIGKILL: no handler runs, the runs stay RUNNING
    killed.wait(timeout=30)
    runs = runs_of("toy-exp")
    assert sorted(r.info.status for r in runs) == ["RUNNING", "RUNNING"]
    victim = children(runs)[0]

    stale = invoke("runs", "--stale")
    assert stale.exit_code == 0, stale.output
    listed = {line.split()[0]: line.split()[-1] for line in stale.output.splitlines()[1:]}
    assert listed == {victim.info.run_id: "gone", parent_of(runs).info.run_id: "gone"}

    uninterrupted = invoke("run", str(toy_spec), "-q", *point)  # a new launch closes the dead process's runs
    assert uninterrupted.exit_code == 0, uninterrupted.output
    client = MlflowClient(tracking_uri)
    for run in runs:
        closed = client.get_run(run.info.run_id)
        assert closed.info.status == "KILLED" and "ended without closing the run" in closed.data.tags["suite.error"]
    assert invoke("runs", "--stale").output.strip() == "(no stale runs)"

    resumed = invoke("resume", victim.info.run_id, "-q")
    assert resumed.exit_code == 0, resumed.output
    again = client.get_run(victim.info.run_id)
    assert again.info.status == "FINISHED" and again.data.tags["suite.resumed"] == "1" and "suite.error" not in again.data.tags
    reference = next(r for r in children(runs_of("toy-exp")) if r.info.run_id != victim.info.run_id)
    assert again.data.metrics == reference.data.metrics  # every final metric, exactly
    steps = {m.step: m.value for m in client.get_metric_history(victim.info.run_id, "loss")}
    assert steps == {m.step: m.value for m in client.get_metric_history(reference.info.run_id, "loss")}
    assert sorted(steps) == [0, 1, 2, 3, 4, 5]


@pytest.mark.slow
def test_resume_refuses_what_it_cannot_continue(toy_distribution, tracking_uri, toy_spec):
    assert invoke("run", str(toy_spec), "-q", "-o", "seeds=[0]").exit_code == 0
    runs = runs_of("toy-exp")
    finished, parent = children(runs)[0].info.run_id, parent_of(runs).info.run_id
    for run_id, expected in [
        (finished, f"run {finished} is FINISHED; only KILLED or FAILED runs can be resumed"),
        (parent, f"run {parent} is not a child run"),
        ("0" * 32, "no run 00000000000000000000000000000000"),
    ]:
        result = invoke("resume", run_id)
        assert result.exit_code == 2, result.output
        assert result.output.strip().splitlines()[-1].startswith(f"error: {expected}")
    assert MlflowClient(tracking_uri).get_run(finished).info.status == "FINISHED"


def test_process_state_tells_alive_gone_and_unknown():
    mine = process_tags()
    assert process_state(mine) == "alive"
    assert process_state({**mine, "suite.pid_started": str(float(mine["suite.pid_started"]) - 3600)}) == "gone"  # pid reused
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    assert process_state({**mine, "suite.pid": str(done.pid)}) == "gone"  # exited (or its pid now names a younger process)
    assert process_state({**mine, "suite.host": "another-host"}) == "unknown"
    assert process_state({}) == "unknown"


@pytest.mark.slow
def test_launch_passes_evaluation_and_curves(toy_distribution, tracking_uri, toy_spec):
    plan = specs.plan(toy_spec, ["seeds=[0]"])
    result = launch(plan, tracking_uri, evaluation="valid", quiet=True)
    (child,) = result.children
    run = MlflowClient(tracking_uri).get_run(child.run_id)
    assert run.data.tags["toy.evaluation"] == "valid" and run.data.tags["suite.evaluation"] == "valid"
    assert set(child.summary) == {"valid.final_loss", "valid.weight_norm"}
    history = MlflowClient(tracking_uri).get_metric_history(child.run_id, "valid.loss")
    assert child.curves == {"valid.loss": [(m.step, m.value) for m in history]} and len(history) == 4
    assert "valid.loss.png" in {artifact.path for artifact in MlflowClient(tracking_uri).list_artifacts(result.parent_run_id)}


@pytest.mark.slow
def test_runs_named_after_the_model(toy_distribution, tracking_uri, toy_spec):
    result = invoke("run", str(toy_spec), "-q", "-o", "method.name=toy-fit-by-model", "-o", "seeds=[0]")
    assert result.exit_code == 0, result.output
    (child,) = children(runs_of("toy-exp"))
    assert child.info.run_name == "toy-linear seed=0" and child.data.tags["suite.point"] == "toy-linear"
    assert any(
        line.split("|")[1:3] and [c.strip() for c in line.split("|")[1:3]] == ["toy-linear", "1"] for line in result.output.splitlines()
    )


@pytest.mark.slow
def test_same_seed_same_metrics(toy_distribution, tracking_uri, toy_spec):
    assert invoke("run", str(toy_spec), "-q", "-o", "method.batch_size=8").exit_code == 0
    assert invoke("run", str(toy_spec), "-q", "-o", "method.batch_size=8").exit_code == 0
    kids = children(runs_of("toy-exp"))
    by_seed: dict[str, list] = {}
    for run in kids:
        by_seed.setdefault(run.data.tags["suite.seed"], []).append(run.data.metrics)
    assert by_seed["0"][0] == by_seed["0"][1]
    assert by_seed["0"][0] != by_seed["1"][0]


@pytest.mark.slow
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
    assert "Creating initial MLflow database tables" not in done.stderr and "alembic" not in done.stderr
    assert "WARNING" not in done.stderr and "Warning" not in done.stderr, done.stderr
