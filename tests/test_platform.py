"""Registry, sweeps (local and Ray), reports, the dashboard server and progress bars."""

from __future__ import annotations

import subprocess
import sys

import mlflow
import pytest
from click.testing import CliRunner

from suite import registry
from suite.cli import dashboard_url, exposure_warning, main
from suite.progress import progress, shows_progress


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def test_list_shows_third_party_plugins_with_their_distribution(toy_distribution):
    result = invoke("list")
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.output.splitlines()]
    assert ["scenario", "toy-numbers", "suite-toy", "0.3.1", "suite_toy:NUMBERS"] in rows
    assert ["method", "toy-fit", "suite-toy", "0.3.1", "suite_toy:FIT"] in rows
    builtin = [row for row in rows if row[1] == "coconut"]
    assert builtin and builtin[0][2] == "cl-suite"


def test_registry_lists_every_group(toy_distribution):
    assert "toy-linear" in registry.registrations("model")
    assert registry.get("method", "toy-fit").train_options.__name__ == "FitTrain"


@pytest.mark.slow
def test_sweep_keeps_going_after_a_failed_point(toy_distribution, tracking_uri, toy_spec):
    result = invoke("sweep", str(toy_spec), "-q", "-o", "seeds=[0]", "-g", "method.fail_at_step=[null,1,null]", "-g", "train.lr=[0.01]")
    assert result.exit_code == 1
    assert "error: 1 of 3 runs failed; first: run 'method.fail_at_step=1 train.lr=0.01 seed=0'" in result.output
    runs = mlflow.search_runs(experiment_names=["toy-exp"], output_format="list")
    statuses = sorted(r.info.status for r in runs if r.data.tags["suite.kind"] == "child")
    assert statuses == ["FAILED", "FINISHED", "FINISHED"]
    # labels show only the values that differ; the two identical points ran the same seed: one repeat, pooled once
    assert "| method.fail_at_step=None |   1 |" in result.output and "1 repeated run(s) of a seed" in result.output


@pytest.mark.slow
@pytest.mark.xdist_group("ray")  # one Ray at a time on the machine (make test runs two workers)
def test_sweep_on_ray_logs_every_trial(toy_distribution, toy_env, toy_spec):
    command = [sys.executable, "-m", "suite.cli", "sweep", str(toy_spec), "--ray", "-q", "-g", "train.lr=[0.01,0.02]"]
    driver = subprocess.Popen(command, env=toy_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, stderr = driver.communicate(timeout=300)
    assert driver.returncode == 0, stderr[-3000:]
    runs = mlflow.search_runs(experiment_names=["toy-exp"], output_format="list")
    kids = [r for r in runs if r.data.tags["suite.kind"] == "child"]
    (parent,) = [r for r in runs if r.data.tags["suite.kind"] == "parent"]
    assert len(kids) == 4 and all(r.info.status == "FINISHED" for r in kids)
    assert sorted(r.data.params["train.lr"] for r in kids) == ["0.01", "0.01", "0.02", "0.02"]
    assert all("loss" in r.data.metrics for r in kids)
    assert all(r.data.tags["toy.quiet"] == "True" for r in kids)  # --quiet reached the workers through RunContext
    assert parent.data.tags["suite.pid"] == str(driver.pid)
    assert all(r.data.tags["suite.pid"] != str(driver.pid) for r in kids)  # each child is opened by the worker that runs it


def test_dashboard_warns_beyond_loopback_and_opens_the_runs_table():
    for host in ("127.0.0.1", "localhost", "::1"):
        assert exposure_warning(host) is None
    for host in ("0.0.0.0", "::", "192.168.1.20", "lab-server"):
        warning = exposure_warning(host)
        assert warning.startswith(f"warning: the dashboard on {host} has no authentication") and "basic-auth" in warning
    assert dashboard_url("0.0.0.0", 5000, "7") == "http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning"
    assert dashboard_url("::1", 80, None) == "http://[::1]:80/#/experiments?workflowType=machine_learning"


def test_progress_is_silent_when_quiet():
    items = progress(range(3), desc="work", quiet=True)
    assert isinstance(items, range)
    assert isinstance(progress([1], desc="piped", quiet=False), list)  # stderr is not a terminal under pytest
    assert shows_progress(False) is False and shows_progress(True) is False


@pytest.mark.slow
def test_importing_ray_keeps_the_launch_sigterm_handler():
    """Ray's first import sets SIGTERM to sys.exit, which would end a Ray sweep's runs FAILED with exit 15."""
    code = (
        "import signal, sys\n"
        "from suite.ray_launch import import_ray\n"
        "def mine(signum, frame): pass\n"
        "signal.signal(signal.SIGTERM, mine)\n"
        "assert 'ray' not in sys.modules\n"
        "import_ray()\n"
        "assert 'ray._private.worker' in sys.modules and signal.getsignal(signal.SIGTERM) is mine\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
