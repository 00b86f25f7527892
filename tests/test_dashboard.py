"""``suite ui``: a real ``mlflow server`` whose life is tied to the command's, on a port checked first.

Each server test starts MLflow's real server (tens of seconds on a busy machine) through the
``suite`` command in a subprocess, and ends it the way a user would: Ctrl-C's SIGTERM, a
closed terminal (SIGHUP), or ``kill -9``. Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import psutil
import pytest
from click.testing import CliRunner
from processes import communicate_or_kill, suite_process

from suite.cli import main
from suite.dashboard_app import DEFAULT_VIEW_SCRIPT, TRAINING_WORKFLOW, WORKFLOW_STORAGE_KEY
from suite.watchdog import group_members

START_WAIT_S = 240
STOP_WAIT_S = 60
MLFLOW_JS = Path(mlflow.__file__).parent / "server" / "js" / "build" / "static" / "js"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_ui(port: int, env: dict[str, str], cwd: Path) -> tuple[subprocess.Popen, str]:
    """``suite ui`` in a subprocess, and the URL line it prints once the server answers."""
    ui = suite_process(["ui", "--port", str(port)], env, cwd, stdout=subprocess.PIPE)
    deadline = time.monotonic() + START_WAIT_S
    while time.monotonic() < deadline:
        ready, _, _ = select.select([ui.stdout], [], [], 1.0)
        if ready:
            return ui, ui.stdout.readline()
        if ui.poll() is not None:
            pytest.fail(f"suite ui exited with {ui.returncode}: {ui.stderr.read()[-2000:]}")
    ui.kill()
    pytest.fail(f"suite ui printed no URL in {START_WAIT_S} s")


def server_group(ui: subprocess.Popen) -> int:
    """The process group of the dashboard's server: its watcher leads it."""
    (watcher,) = psutil.Process(ui.pid).children()
    assert os.getpgid(watcher.pid) == watcher.pid, "the server runs in a process group of its own"
    assert len(group_members(watcher.pid)) >= 3, "watcher, mlflow server and uvicorn"
    return watcher.pid


def answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
            return True
    except OSError:
        return False


def wait_until_gone(group: int, port: int) -> None:
    deadline = time.monotonic() + STOP_WAIT_S
    while time.monotonic() < deadline and (group_members(group) or answers(port)):
        time.sleep(0.5)
    assert group_members(group) == [], "a process of the server's group survived"
    assert not answers(port), "the port still answers"


@pytest.mark.slow
def test_ui_prints_the_url_once_serving_opens_the_training_view_and_stops_its_group_on_sigterm(
    toy_distribution, toy_env, toy_spec, tmp_path
):
    assert CliRunner().invoke(main, ["run", str(toy_spec), "-q", "-o", "seeds=[0]"]).exit_code == 0
    experiment = mlflow.get_experiment_by_name("toy-exp")
    port = free_port()
    ui, line = start_ui(port, toy_env, tmp_path)
    try:
        assert line.startswith(f"MLflow dashboard: http://127.0.0.1:{port}/#/experiments/{experiment.experiment_id}/runs?workflowType=")
        assert answers(port)  # printed only once the server answers
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
            page = response.read().decode()
        assert page.startswith('<!doctype html><html lang="en"><head>' + DEFAULT_VIEW_SCRIPT)  # before MLflow's bundle
        url = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=10"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.loads(response.read())
        served = {e["name"]: {t["key"]: t["value"] for t in e.get("tags", [])} for e in body["experiments"]}
        assert served["toy-exp"]["mlflow.experimentKind"] == "custom_model_development"
        group = server_group(ui)
    finally:
        ui.send_signal(signal.SIGTERM)
        _, stderr = ui.communicate(timeout=STOP_WAIT_S)
    assert ui.returncode == 143
    wait_until_gone(group, port)
    assert not re.search(r'"GET /|Deprecat|FutureWarning|INFO', stderr), stderr  # the server's own lines went to its log
    log = Path(toy_env["SUITE_CACHE"]) / "dashboard" / f"server-{port}.log"
    assert f"its log: {log}" in stderr and '"GET / HTTP/1.1" 200' in log.read_text()


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGHUP, signal.SIGKILL], ids=["closed-terminal", "kill-9"])
def test_the_server_dies_with_suite_ui_however_it_ends(toy_env, tmp_path, how):
    port = free_port()
    ui, line = start_ui(port, toy_env, tmp_path)
    try:
        assert line.startswith(f"MLflow dashboard: http://127.0.0.1:{port}/")
        group = server_group(ui)
    finally:
        ui.send_signal(how)  # no handler runs for SIGKILL, nor for SIGHUP's default action
        communicate_or_kill(ui, STOP_WAIT_S)
    assert ui.returncode == -how
    wait_until_gone(group, port)


def test_a_busy_port_is_exit_2_naming_it_and_starts_nothing(tracking_uri):
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        before = {process.pid for process in psutil.Process().children(recursive=True)}
        result = CliRunner().invoke(main, ["ui", "--port", str(port)])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: port {port} on 127.0.0.1 is in use by another program; choose another with --port"
    assert {process.pid for process in psutil.Process().children(recursive=True)} <= before
    assert "MLflow dashboard" not in result.output


def test_mlflow_reads_the_view_from_the_url_then_from_the_browser_store_the_app_fills():
    """The UI mechanism ``suite.dashboard_app`` relies on, as the installed MLflow ships it."""
    (bundle,) = MLFLOW_JS.glob("main.*.js")
    code = bundle.read_text(encoding="utf-8")
    key, version = WORKFLOW_STORAGE_KEY.rsplit("_v", 1)
    assert f'key:"{key}",version:{version},' in code  # the stored choice, "<key>_v<version>" in localStorage
    assert 'e.get("workflowType")' in code  # the URL parameter comes first
    assert f'MACHINE_LEARNING="{TRAINING_WORKFLOW}"' in code
    assert "JSON.parse(e)" in code  # values are stored as JSON text, as the script writes them


def test_a_server_that_exits_is_exit_1_naming_its_last_words_and_log(tracking_uri, monkeypatch, tmp_path):
    """The real watcher runs a stand-in server that fails at once, as a broken store or install would."""
    from suite import dashboard

    failing = [sys.executable, "-c", "import sys; print('boom: the store cannot be opened', flush=True); sys.exit(3)"]
    monkeypatch.setattr(dashboard, "server_command", lambda uri, host, port: failing)
    port = free_port()
    result = CliRunner().invoke(main, ["ui", "--port", str(port)])
    assert result.exit_code == 1
    log = tmp_path / "cache" / "dashboard" / f"server-{port}.log"
    assert f"error: the MLflow server exited with code 3: boom: the store cannot be opened (full log: {log})" in result.output
    assert "MLflow dashboard:" not in result.output  # no URL for a server that never answered
