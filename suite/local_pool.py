"""Run a launch's children in parallel on this machine (``--jobs N``), each in its own process.

Each child is a fresh ``spawn`` process: it imports the suite anew, rebuilds its point from
the child's spec tree (the round trip a Ray task makes), opens its own MLflow run and sets
its own seeds and torch threads exactly as the serial path does, so a child's results do not
depend on which process ran it. A process per child also means a child that dies (SIGKILL,
the OOM killer) is an exit code the pool sees, never a hung launch.

A child talks to the pool over a pipe: its run id as soon as its run is open (so the run of
a child that dies can still be closed, FAILED), then its result. The pool keeps at most N
children running and prints one line per child that ends; progress bars are off in the
children (bars from several processes would interleave).

Stopping: with ``fail_fast`` (``suite run``) no new child starts after a failure and the
running ones finish, their results counted, as in a serial launch that stops after the
failed child. Ctrl-C or SIGTERM on the launch, or a child interrupted on its own, forwards
the signal to every running child (each closes its run KILLED), waits for them for a grace
period, SIGKILLs what remains, and re-raises; the launcher then closes any run still open.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any

from suite.errors import Terminated

if TYPE_CHECKING:
    from suite.launch_types import ChildJob, ChildResult, LaunchSite
    from suite.spec import LaunchPlan

SPAWN = multiprocessing.get_context("spawn")
STOP_GRACE_S = 30.0
"""How long a signalled child has to close its run before it is SIGKILLed."""


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, as in a container or under taskset)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_jobs(threads: Sequence[int | None], children: int) -> int:
    """How many children fit the cores at once: cores // the largest ``train.num_threads``, at least 1.

    A child without ``num_threads`` lets torch take every core, so it runs alone.
    """
    cores = available_cores()
    widest = max((count or cores for count in threads), default=1)
    return max(1, min(children, cores // widest))


def jobs_for(plan: LaunchPlan, jobs: int | None) -> int:
    """``--jobs`` as given, or as many children as fit the cores given each point's ``train.num_threads``."""
    if jobs is not None:
        return jobs
    threads = [getattr(point.train_options, "num_threads", None) for _, point in plan.points]
    return default_jobs(threads, sum(len(point.seeds) for _, point in plan.points))


@dataclass
class _Child:
    """A child process the pool started, and what it has said so far."""

    index: int
    job: ChildJob
    process: BaseProcess
    pipe: multiprocessing.connection.Connection
    started: float
    run_id: str | None = None
    result: ChildResult | None = None
    interrupted: str | None = None


def run_in_processes(
    jobs: Sequence[ChildJob],
    site: LaunchSite,
    workers: int,
    fail_fast: bool,
    key_metrics: Sequence[str] = (),
    echo: Callable[[str], None] | None = None,
) -> list[ChildResult]:
    """Run ``jobs`` with at most ``workers`` child processes at once; results in job order (the jobs that started)."""
    echo = echo or _echo_stderr
    child_site = replace(site, quiet=True)
    waiting = list(range(len(jobs)))
    running: dict[int, _Child] = {}
    results: dict[int, ChildResult] = {}
    try:
        while waiting or running:
            stop_starting = fail_fast and any(result.error for result in results.values())
            while waiting and len(running) < workers and not stop_starting:
                index = waiting.pop(0)
                running[index] = _start(index, jobs[index], child_site)
            if not running:
                break
            multiprocessing.connection.wait([handle for child in running.values() for handle in (child.pipe, child.process.sentinel)])
            for child in list(running.values()):
                _read_messages(child)
                if child.interrupted:
                    raise Terminated() if child.interrupted == "SIGTERM" else KeyboardInterrupt()
                if child.process.exitcode is None:
                    continue
                _read_messages(child)  # what it sent just before it exited
                results[child.index] = child.result or _died(child, site)
                del running[child.index]
                echo(_finished_line(results[child.index], child, len(results), len(jobs), key_metrics))
    except BaseException as stop:
        ctrl_c = isinstance(stop, KeyboardInterrupt) and not isinstance(stop, Terminated)
        _stop_all(list(running.values()), signal.SIGINT if ctrl_c else signal.SIGTERM)
        raise
    return [results[index] for index in sorted(results)]


def _start(index: int, job: ChildJob, site: LaunchSite) -> _Child:
    from suite.child_run import child_tree

    receiver, sender = SPAWN.Pipe(duplex=False)
    process = SPAWN.Process(
        target=_child_main,
        args=(job.label, child_tree(job.point, job.seed), job.point.source, job.seed, site, sender),
        name=f"suite-child-{index}",
    )
    process.start()
    sender.close()  # the child holds the only writing end: EOF when it is gone
    return _Child(index, job, process, receiver, time.monotonic())


def _read_messages(child: _Child) -> None:
    with contextlib.suppress(EOFError, OSError):
        while child.pipe.poll():
            kind, value = child.pipe.recv()
            if kind == "opened":
                child.run_id = value
            elif kind == "done":
                child.result = value
            elif kind == "interrupted":
                child.interrupted = value
    if child.process.exitcode is None:
        child.process.join(timeout=0)


def _died(child: _Child, site: LaunchSite) -> ChildResult:
    """A child process that ended without a result: a failed child; its run, if it opened one, is closed FAILED."""
    from suite.launch_types import ChildResult
    from suite.tracking import ERROR_TAG, Tracker

    code = child.process.exitcode or 0
    how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
    error = f"its process {child.process.pid} died ({how}) before reporting a result"
    if child.run_id:
        with contextlib.suppress(Exception):
            tracker = Tracker(site.tracking_uri, child.run_id)
            if tracker.status() in ("RUNNING", "SCHEDULED"):
                tracker.set_tags({ERROR_TAG: error})
                tracker.end("FAILED")
    return ChildResult(label=child.job.label, seed=child.job.seed, run_id=child.run_id, error=error)


def _stop_all(children: list[_Child], sig: signal.Signals) -> None:
    """Signal every running child, give them STOP_GRACE_S to close their runs, then SIGKILL the rest."""
    alive = [child for child in children if child.process.exitcode is None]
    for child in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.process.pid, sig)
    deadline = time.monotonic() + STOP_GRACE_S
    for child in alive:
        child.process.join(timeout=max(0.0, deadline - time.monotonic()))
        if child.process.exitcode is None:
            child.process.kill()
            child.process.join(timeout=5)


def _finished_line(result: ChildResult, child: _Child, done: int, total: int, key_metrics: Sequence[str]) -> str:
    """``[2/3] replay seed=0 FINISHED avg_acc=0.556 2:41``: one line per child that ends."""
    status = "FAILED" if result.error else "FINISHED"
    metric = _key_metric(result.summary, key_metrics)
    shown = f" {metric[0]}={metric[1]:.4g}" if metric else ""
    reason = f" ({result.error})" if result.error else ""
    minutes, seconds = divmod(round(time.monotonic() - child.started), 60)
    return f"[{done}/{total}] {result.label} seed={result.seed} {status}{shown} {minutes}:{seconds:02d}{reason}"


def _key_metric(summary: dict[str, float], names: Sequence[str]) -> tuple[str, float] | None:
    """The first of the spec's report metrics the child reported (as is, or as ``valid.``/``test.``), else its first metric."""
    for name in names:
        for key in (name, f"valid.{name}", f"test.{name}"):
            if key in summary:
                return key, summary[key]
    return next(iter(summary.items()), None)


def _echo_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _child_main(label: str, tree: dict[str, Any], source: str, seed: int, site: LaunchSite, pipe: Any) -> None:
    """A child process: run one child and send its run id, then its result (or that it was interrupted)."""
    _interrupt_once()
    from suite.child_run import run_child_from_tree

    try:
        result = run_child_from_tree(label, tree, source, seed, site, opened=lambda run_id: pipe.send(("opened", run_id)))
        pipe.send(("done", result))
    except KeyboardInterrupt as stop:  # its run is already closed KILLED
        with contextlib.suppress(OSError):
            pipe.send(("interrupted", "SIGTERM" if isinstance(stop, Terminated) else "SIGINT"))
        sys.exit(143 if isinstance(stop, Terminated) else 130)
    finally:
        pipe.close()


def _interrupt_once() -> None:
    """SIGINT raises KeyboardInterrupt and SIGTERM ``Terminated``, once: a second signal (Ctrl-C reaches the
    whole process group, and the pool forwards it too) does not cut short the closing of the run."""

    def interrupt(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
