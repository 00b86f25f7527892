"""``suite ui``: MLflow's own server on the suite's store, living exactly as long as the command.

The port is tried before anything starts (a busy one is an input error, exit 2); the server
runs under ``suite.watchdog`` in a process group of its own, so it stops with the command
however the command ends; its output (one line per request, deprecation warnings) goes to a
log file, named on failure; the URL is printed once the server answers. The server is MLflow's
app with one addition (``suite.dashboard_app``): pages open in the training view.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from suite.errors import SuiteError
from suite.paths import cache_root
from suite.tracking import CLASSIC_VIEW_QUERY, DEFAULT_ARTIFACTS, sqlite_path
from suite.watchdog import STOP_GRACE_S, group_members

START_TIMEOUT_S = 180.0
HEALTH_PROBE_S = 2.0
APP_NAME = "suite"  # the mlflow.app entry point of suite.dashboard_app
LOG_TAIL_LINES = 5


class PortInUse(SuiteError):
    """The port is taken (or the host cannot be bound): nothing was started (exit 2)."""


class ServerFailed(RuntimeError):
    """The server exited or never answered: not the user's input (exit 1); the message names its log."""


@dataclass
class Dashboard:
    """A started server: its watcher (leader of the server's process group), the launcher's end of the pipe, the log."""

    watcher: subprocess.Popen
    lifeline: int
    log_path: Path

    def stop(self) -> None:
        stop_process_group(self.watcher)
        with contextlib.suppress(OSError):
            os.close(self.lifeline)


def check_port(host: str, port: int) -> None:
    """Bind the address for a moment: a PortInUse naming what is wrong when it cannot be served."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as error:
        raise PortInUse(f"--host {host}: not an address of this machine ({error.strerror})") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: a closed port in TIME_WAIT is free
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise PortInUse(f"port {port} on {host} is in use by another program; choose another with --port") from None
            raise PortInUse(f"cannot listen on {host}:{port} ({error.strerror})") from None


def server_command(tracking_uri: str, host: str, port: int) -> list[str]:
    """``mlflow server`` on the store, one worker, artifacts beside a SQLite store, the suite's app when registered."""
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", tracking_uri, "--host", host, "--port", str(port)]
    command += ["--workers", "1"]
    db_path = sqlite_path(tracking_uri)
    if db_path:
        command += ["--artifacts-destination", str(db_path.parent / DEFAULT_ARTIFACTS)]
    if any(entry.name == APP_NAME for entry in metadata.entry_points(group="mlflow.app")):
        command += ["--app-name", APP_NAME]
    return command


def start(tracking_uri: str, host: str, port: int) -> Dashboard:
    """Start the server under its watcher, in a new session; output to ``<cache>/dashboard/server-<port>.log``."""
    log_path = cache_root() / "dashboard" / f"server-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    read_end, write_end = os.pipe()  # both ends close-on-exec: only the watcher gets the read end
    # MLflow's job runner (about ten huey workers) serves GenAI jobs the suite never submits: off unless asked for
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ}
    command = [sys.executable, "-m", "suite.watchdog", str(read_end), "--", *server_command(tracking_uri, host, port)]
    with open(log_path, "w") as log:
        try:
            watcher = subprocess.Popen(
                command,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                pass_fds=(read_end,),
            )
        finally:
            os.close(read_end)
    return Dashboard(watcher, write_end, log_path)


def wait_until_serving(dashboard: Dashboard, host: str, port: int, timeout_s: float = START_TIMEOUT_S) -> None:
    """Poll the server's /health until it answers OK; ServerFailed with the log's last line if it exits or never does."""
    url = f"http://{_reachable(host)}:{port}/health"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if dashboard.watcher.poll() is not None:
            raise ServerFailed(f"the MLflow server exited with code {dashboard.watcher.returncode}: {_log_tail(dashboard.log_path)}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=HEALTH_PROBE_S) as response:  # refused while it starts
            if response.status == 200:
                return
        time.sleep(0.25)
    raise ServerFailed(f"the MLflow server did not answer in {timeout_s:.0f} s; its log: {dashboard.log_path}")


def _log_tail(log_path: Path) -> str:
    lines = [line.strip() for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    last = lines[-1] if lines else "(no output)"
    return f"{last} (full log: {log_path})"


def exposure_warning(host: str) -> str | None:
    """A warning when the dashboard listens beyond this machine: it has no login and can create and delete runs."""
    if host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass  # a host name: it may resolve to any interface
    return (
        f"warning: the dashboard on {host} has no authentication: anyone who reaches it can read, create and delete "
        "runs; on a shared network run `mlflow server --app-name basic-auth` instead (see the README)"
    )


def dashboard_url(host: str, port: int, experiment_id: str | None) -> str:
    """The page to open: the experiment's classic runs table (MLflow 3 would land on its GenAI page)."""
    page = f"experiments/{experiment_id}/runs" if experiment_id else "experiments"
    return f"http://{_reachable(host)}:{port}/#/{page}?{CLASSIC_VIEW_QUERY}"


def _reachable(host: str) -> str:
    """Where a browser on this machine reaches a server bound to ``host``, as a URL writes it."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return f"[{shown}]" if ":" in shown else shown


def stop_process_group(leader: subprocess.Popen) -> None:
    """SIGTERM to the leader's whole group, SIGKILL to whatever still runs after a grace period."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(leader.pid, sig)
        deadline = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < deadline:
            with contextlib.suppress(subprocess.TimeoutExpired):
                leader.wait(timeout=0.2)
            if not group_members(leader.pid):
                return
