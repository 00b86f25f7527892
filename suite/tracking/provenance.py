"""What a run records about where it came from: package versions, git commit, command line, host and process.

The process tags (host, pid and the pid's start time) let a later launch tell a run whose
process was killed (SIGKILL, power cut) from a live one."""

from __future__ import annotations

import getpass
import platform
import socket
import subprocess
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

import psutil

TRACKED_PACKAGES = ("torch", "torchaudio", "avalanche-lib", "recbole", "mlflow", "ray", "numpy", "cl-suite")


HOST_TAG = "suite.host"


PID_TAG = "suite.pid"


PID_STARTED_TAG = "suite.pid_started"


def package_versions() -> dict[str, str]:
    versions = {}
    for package in TRACKED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def git_commit(path: Path | None = None) -> str | None:
    """The commit of the suite's source tree (not the user's cwd), or None outside git."""
    path = path or Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def provenance_tags(command_line: str | None = None, source: str | None = None) -> dict[str, str]:
    """Tags that say which code, packages, user and command produced a run, as MLflow's UI reads them.

    ``mlflow.source.name`` is the spec file (the run's source, shown in the Source column),
    ``mlflow.user`` the account that launched it, ``mlflow.source.git.commit`` the suite's commit.
    """
    tags = {
        "suite.command": command_line or " ".join(sys.argv),
        "suite.python": platform.python_version(),
        "mlflow.user": _user(),
        "mlflow.source.type": "LOCAL",
        "mlflow.source.name": source or (sys.argv[0] if sys.argv else "suite"),
    }
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    for package, version in package_versions().items():
        tags[f"suite.version.{package}"] = version
    return tags


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def process_tags() -> dict[str, str]:
    """Which process runs a run: host, pid, and the pid's start time (a reused pid is another process)."""
    me = psutil.Process()
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(me.pid), PID_STARTED_TAG: f"{me.create_time():.2f}"}


def process_state(tags: Mapping[str, str]) -> str:
    """``alive``, ``gone`` (killed or crashed), or ``unknown`` (another host, or no process tags)."""
    if tags.get(HOST_TAG) != socket.gethostname() or not tags.get(PID_TAG, "").isdigit():
        return "unknown"
    try:
        process = psutil.Process(int(tags[PID_TAG]))
        if process.status() == psutil.STATUS_ZOMBIE:
            return "gone"
        started = tags.get(PID_STARTED_TAG)
        if started and abs(process.create_time() - float(started)) > 1.0:
            return "gone"  # the pid was reused by a later process
    except psutil.NoSuchProcess:
        return "gone"
    except (psutil.AccessDenied, ValueError):
        return "unknown"
    return "alive"
