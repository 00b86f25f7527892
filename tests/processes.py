"""``suite`` as a child process of a test, with the signal dispositions of a command typed in a terminal.

A command started in the background of a non-interactive shell inherits SIGINT ignored (POSIX),
and one under ``nohup`` inherits SIGHUP ignored; Python then installs no Ctrl-C handler. A test
that sends these signals must mean the same whichever way the test run itself was started, so
the child gets both back at their default actions.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil


def terminal_signals() -> None:
    """``preexec_fn``: SIGINT and SIGHUP at their default actions in the child."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def suite_process(args: list[str], env: dict[str, str], cwd: Path, **popen: Any) -> subprocess.Popen:
    """``python -m suite.cli ARGS`` with its stderr readable as text (stdout too when asked)."""
    popen = {"stderr": subprocess.PIPE, "text": True, **popen}
    return subprocess.Popen([sys.executable, "-m", "suite.cli", *args], env=env, cwd=cwd, preexec_fn=terminal_signals, **popen)


def communicate_or_kill(process: subprocess.Popen, timeout: float) -> tuple[Any, Any]:
    """``communicate`` within ``timeout``; a process still running then is killed with its children before the
    test fails, so a failing test leaves nothing running behind it."""
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        for child in psutil.Process(process.pid).children(recursive=True):
            child.kill()
        process.kill()
        process.communicate()
        raise
