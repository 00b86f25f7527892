"""Parallel children on one machine (``--jobs N``): same results as serial, one SQLite store under
concurrent writers, a SIGKILLed child, fail-fast, and Ctrl-C/SIGTERM closing every child."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import mlflow
import psutil
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient
from processes import communicate_or_kill, suite_process
from test_sequential_pipeline import SMALL, write_ring_dataset

from suite import local_pool
from suite import spec as specs
from suite.cli import main

PAUSE_ENV = "SUITE_TOY_PAUSE_AT_STEP"
PAUSE_SEED_ENV = "SUITE_TOY_PAUSE_SEED"


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def children(experiment: str) -> list:
    runs = mlflow.search_runs(experiment_names=[experiment], output_format="list")
    return [r for r in runs if r.data.tags.get("suite.kind") == "child"]


def by_child(runs: list) -> dict[tuple[str, str], object]:
    return {(r.data.tags["suite.point"], r.data.tags["suite.seed"]): r for r in runs}


def final_metrics(run) -> dict[str, float]:
    return {key: value for key, value in run.data.metrics.items() if key.startswith(("test.", "best_valid."))}


def wait_for_pauses(process: subprocess.Popen, count: int, timeout: float = 240) -> list[str]:
    """Read the launch's stderr until ``count`` children said they are paused; the lines read so far."""
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        lines.append(line)
        if sum(seen.startswith("toy: paused at step") for seen in lines) == count:
            return lines
    process.kill()
    raise AssertionError("the children never paused: " + "".join(lines)[-3000:])


def test_default_jobs_fit_the_cores_given_each_childs_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_pool, "available_cores", lambda: 8)
    assert local_pool.default_jobs([1, 1], children=10) == 8
    assert local_pool.default_jobs([1, 2], children=10) == 4  # the widest child decides
    assert local_pool.default_jobs([1], children=3) == 3  # never more processes than children
    assert local_pool.default_jobs([None, 1], children=10) == 1  # no num_threads: torch takes every core
    assert local_pool.default_jobs([16], children=10) == 1
    quickstart = specs.plan(Path(__file__).resolve().parents[1] / "runs" / "quickstart.yaml", [], [], check_data=False)
    assert local_pool.jobs_for(quickstart, None) == 3  # three children of one thread each
    assert local_pool.jobs_for(specs.plan(quickstart.source, ["train.num_threads=4"], [], check_data=False), None) == 2
    assert local_pool.jobs_for(quickstart, 1) == 1


@pytest.mark.slow
def test_parallel_children_end_exactly_as_serial_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real RecBole SASRec, two seeds x two learning rates: every child's final metrics with --jobs 2 equal
    those with --jobs 1. Exact equality: the same machine runs both (run against run, not a pinned value)."""
    monkeypatch.chdir(tmp_path)
    data = write_ring_dataset(tmp_path / "data")
    model = ", ".join(f"{key}: {value}" for key, value in SMALL.items())
    spec = tmp_path / "sasrec-tiny.yaml"
    spec.write_text(
        f"experiment: pool\nseeds: [0, 1]\nscenario: {{name: recbole, path: {data}, max_seq_length: 10}}\n"
        f"model: {{name: sasrec, {model}}}\nmethod: {{name: recbole-trainer}}\n"
        "train: {epochs: 2, train_batch_size: 64, eval_batch_size: 128, topk: [5, 10], num_threads: 1}\n"
    )
    finals = {}
    for jobs in ("1", "2"):
        uri = f"sqlite:///{tmp_path / f'jobs{jobs}.db'}"
        result = invoke("run", str(spec), "-q", "--jobs", jobs, "--tracking-uri", uri, "-g", "train.learning_rate=[0.001,0.003]")
        assert result.exit_code == 0, result.output
        mlflow.set_tracking_uri(uri)
        runs = by_child(children("pool"))
        assert len(runs) == 4 and all(run.info.status == "FINISHED" for run in runs.values())
        finals[jobs] = {key: final_metrics(run) for key, run in runs.items()}
        pids = {run.data.tags["suite.pid"] for run in runs.values()}
        assert len(pids) == (1 if jobs == "1" else 4)  # serial: in the launch's process; parallel: a process per child
    assert all(finals["1"][key] for key in finals["1"])
    assert finals["2"] == finals["1"]


@pytest.mark.slow
def test_concurrent_children_lose_nothing_in_one_sqlite_store(toy_distribution, tracking_uri, toy_spec) -> None:
    """Four children log a metric and a checkpoint artifact at every step into one SQLite file at once."""
    steps = 25
    result = invoke("sweep", str(toy_spec), "--jobs", "4", "-o", "seeds=[0,1,2,3]", "-o", f"method.steps={steps}")
    assert result.exit_code == 0, result.output
    assert "locked" not in result.output
    runs = children("toy-exp")
    assert len(runs) == 4 and all(run.info.status == "FINISHED" for run in runs)
    assert len({run.data.tags["suite.pid"] for run in runs}) == 4
    client = MlflowClient(tracking_uri)
    for run in runs:
        assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == list(range(steps))
        assert {"final_loss", "weight_norm"} <= set(run.data.metrics)
    finished_lines = [line for line in result.output.splitlines() if line.startswith("[") and "FINISHED final_loss=" in line]
    assert sorted(line.split()[0] for line in finished_lines) == ["[1/4]", "[2/4]", "[3/4]", "[4/4]"]


@pytest.mark.slow
def test_fail_fast_starts_no_child_after_a_failure_and_lets_running_ones_finish(toy_distribution, toy_env, toy_spec, tmp_path) -> None:
    """Three points, two at a time: the first fails at step 1 while the second waits at step 2 (until released);
    the third never starts, the second finishes, the launch exits 1."""
    release = tmp_path / "release"
    env = {**toy_env, PAUSE_ENV: "2", "SUITE_TOY_RELEASE_FILE": str(release)}
    args = ["run", str(toy_spec), "-q", "--jobs", "2", "-o", "seeds=[0]", "-o", "method.steps=5", "-g", "method.fail_at_step=[1,null,null]"]
    launch = suite_process(args, env, tmp_path)
    lines = wait_for_pauses(launch, 1)
    while not any(" FAILED " in line for line in lines):  # the pool has seen the failure: now let the second child go on
        lines.append(launch.stderr.readline())
        assert lines[-1], "".join(lines)[-3000:]
    release.touch()
    _, stderr = launch.communicate(timeout=240)
    assert launch.returncode == 1, stderr[-3000:]
    assert "toy method failed at step 1" in stderr
    statuses = sorted(run.info.status for run in children("toy-exp"))
    assert statuses == ["FAILED", "FINISHED"]  # the third point was never opened


@pytest.mark.slow
def test_a_sigkilled_child_is_a_failed_child_and_the_launch_goes_on(toy_distribution, toy_env, toy_spec, tmp_path) -> None:
    env = {**toy_env, PAUSE_ENV: "1", PAUSE_SEED_ENV: "0"}
    launch = suite_process(["sweep", str(toy_spec), "-q", "--jobs", "2", "-o", "method.steps=4"], env, tmp_path)
    read_before_the_kill = wait_for_pauses(launch, 1)  # seed 1 may already have finished and said so
    (victim,) = [run for run in children("toy-exp") if run.data.tags["suite.seed"] == "0"]
    os.kill(int(victim.data.tags["suite.pid"]), signal.SIGKILL)
    _, rest = launch.communicate(timeout=240)
    stderr = "".join(read_before_the_kill) + rest
    assert launch.returncode == 1, stderr[-3000:]
    runs = {run.data.tags["suite.seed"]: run for run in children("toy-exp")}
    dead, alive = runs["0"], runs["1"]
    assert dead.info.status == "FAILED" and "died (signal SIGKILL)" in dead.data.tags["suite.error"]
    assert alive.info.status == "FINISHED"
    assert "seed=0 FAILED" in stderr and "seed=1 FINISHED final_loss=" in stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sig", "code", "reason"), [(signal.SIGTERM, 143, "terminated (SIGTERM)"), (signal.SIGINT, 130, "interrupted (Ctrl-C)")]
)
def test_a_signal_to_the_launch_closes_every_child_killed(toy_distribution, toy_env, toy_spec, tmp_path, sig, code, reason) -> None:
    launch = suite_process(["run", str(toy_spec), "-q", "--jobs", "2"], {**toy_env, PAUSE_ENV: "1"}, tmp_path)
    wait_for_pauses(launch, 2)
    pids = [int(run.data.tags["suite.pid"]) for run in children("toy-exp")]
    assert len(pids) == 2 and launch.pid not in pids
    launch.send_signal(sig)  # to the launch only: it forwards the signal to its children
    _, stderr = communicate_or_kill(launch, 120)
    assert launch.returncode == code, stderr[-3000:]
    runs = mlflow.search_runs(experiment_names=["toy-exp"], output_format="list")
    assert sorted(run.info.status for run in runs) == ["KILLED"] * 3  # the parent and both children
    assert all(run.data.tags["suite.error"] == reason for run in runs if run.data.tags["suite.kind"] == "child")
    assert not [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]


def test_jobs_and_ray_options_that_cannot_go_together_are_input_errors(toy_distribution, tracking_uri, toy_spec) -> None:
    result = invoke("sweep", str(toy_spec), "--ray", "--jobs", "2")
    assert result.exit_code == 2 and "--jobs runs children on this machine" in result.output
    result = invoke("sweep", str(toy_spec), "--gpus-per-trial", "1")
    assert result.exit_code == 2 and "--gpus-per-trial reserves Ray GPUs: add --ray" in result.output
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


@pytest.mark.slow
def test_tune_ranks_children_run_in_parallel_as_serial_ones(toy_distribution, tracking_uri, toy_spec) -> None:
    args = ["tune", str(toy_spec), "-q", "-o", "seeds=[0]", "-o", "method.batch_size=8", "-g", "train.lr=[0.01,0.05]"]
    args += ["--objective", "valid.final_loss", "--minimize"]
    parallel = invoke(*args, "--jobs", "2", "--experiment", "parallel")
    serial = invoke(*args, "--jobs", "1", "--experiment", "serial")
    assert parallel.exit_code == 0 and serial.exit_code == 0, parallel.output + serial.output
    finals = {
        name: {r.data.tags["suite.point"]: r.data.metrics["valid.final_loss"] for r in children(name)} for name in ("parallel", "serial")
    }
    assert finals["parallel"] == finals["serial"] and len(finals["serial"]) == 2
    assert len({r.data.tags["suite.pid"] for r in children("parallel")}) == 2
    assert parallel.stdout.split("# chosen by")[0] == serial.stdout.split("# chosen by")[0]  # the same ranking table
