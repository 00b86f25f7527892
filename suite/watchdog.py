"""A process group that dies with the process that started it, however that process ends.

``suite ui`` starts ``python -m suite.watchdog FD -- mlflow server ...`` in a session of its
own: this watcher leads the new process group, starts the server inside it, and blocks on the
read end ``FD`` of a pipe whose write end only the launcher holds. When the launcher ends, by
Ctrl-C, SIGTERM, SIGHUP (a closed terminal) or SIGKILL, the kernel closes its end, the read
returns end-of-file, and the watcher stops every process of its group (the server, uvicorn
and its workers): SIGTERM, then SIGKILL after a grace period. ``PR_SET_PDEATHSIG`` would reach
only the direct child, never uvicorn's workers, and a pipe works on every POSIX system.

Only the standard library and psutil are imported here: the watcher starts in a blink.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time

import psutil

STOP_GRACE_S = 10.0
POLL_S = 0.5


def group_members(pgid: int, exclude: int | None = None) -> list[psutil.Process]:
    """The live (non-zombie) processes of a process group, but ``exclude``."""
    members = []
    for process in psutil.process_iter(["status"]):
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if process.pid != exclude and process.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(process.pid) == pgid:
                members.append(process)
    return members


def stop_members(pgid: int, exclude: int | None = None, grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM to every member of the group, SIGKILL to those still alive after ``grace_s``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for process in group_members(pgid, exclude):
            with contextlib.suppress(psutil.Error):
                process.send_signal(sig)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            if not group_members(pgid, exclude):
                return
            time.sleep(0.1)


def watch(read_fd: int, command: list[str]) -> int:
    """Run ``command`` in this process's group until it exits or the pipe's writer is gone; the server's exit code."""
    stopping = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))  # stop the group first, then leave
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the launcher, which stops this group
    server = subprocess.Popen(command)
    while server.poll() is None and not stopping:
        readable, _, _ = select.select([read_fd], [], [], POLL_S)
        if readable and not os.read(read_fd, 1):
            break  # end of file: the launcher is gone
    stop_members(os.getpgid(0), exclude=os.getpid())
    code = server.wait()
    return code if code >= 0 else 128 - code


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--" or not argv[0].isdigit():
        print("usage: python -m suite.watchdog FD -- COMMAND...", file=sys.stderr)
        return 2
    return watch(int(argv[0]), argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
