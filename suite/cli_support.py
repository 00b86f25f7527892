"""What every ``suite`` command shares: the exit-code contract, signals, and the common options.

Exit codes: 0 everything finished; 2 bad input (``SuiteError``), one line on stderr, no MLflow
run created; 1 a run failed (``ChildRunsFailed``: FAILED in MLflow with everything it logged);
130 Ctrl-C and 143 SIGTERM (open runs end KILLED). ``--debug`` adds the traceback.
"""

from __future__ import annotations

import contextlib
import functools
import shlex
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from suite.errors import SuiteError, Terminated

EXIT_USER_ERROR = 2
EXIT_RUN_FAILED = 1
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


def guarded(command: Callable[..., Any]) -> Callable[..., Any]:
    """Map failures to one readable line and an exit code; tracebacks only with --debug. SIGTERM acts as Ctrl-C."""

    @functools.wraps(command)
    def wrapper(*args: Any, debug: bool = False, **kwargs: Any) -> Any:
        from suite.launch_types import ChildRunsFailed

        try:
            with _sigterm_as_interrupt():
                return command(*args, **kwargs)
        except SuiteError as error:
            _fail(f"error: {error}", EXIT_USER_ERROR, debug)
        except ChildRunsFailed as failure:
            _fail(f"error: {failure.describe()}", EXIT_RUN_FAILED, debug, failure.failed[0].traceback)
        except KeyboardInterrupt as stop:  # Terminated (SIGTERM) included
            code = EXIT_TERMINATED if isinstance(stop, Terminated) else EXIT_INTERRUPTED
            _fail(": ".join([str(stop) or "interrupted (Ctrl-C)", *getattr(stop, "__notes__", [])]), code, debug)
        except Exception as error:
            _fail(f"error: {type(error).__name__}: {error}", EXIT_RUN_FAILED, debug)

    return wrapper


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (timeout, Slurm, docker stop) raises ``Terminated`` where Ctrl-C raises KeyboardInterrupt.

    A second SIGTERM while the runs are being closed is ignored, so the closing is not cut short.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def noting_closed_runs() -> Iterator[None]:
    """A launch stopped by Ctrl-C or SIGTERM has closed its runs KILLED: say so."""
    try:
        yield
    except KeyboardInterrupt as stop:
        stop.add_note("open runs were marked KILLED")
        raise


def _fail(message: str, code: int, debug: bool, details: str | None = None) -> None:
    if debug:
        if details:
            click.echo(details.rstrip(), err=True)
        else:
            traceback.print_exc()
    click.echo(message.splitlines()[0] if message else "error", err=True)
    sys.exit(code)


def common(command: Callable[..., Any]) -> Callable[..., Any]:
    command = click.option("--debug", is_flag=True, help="Show the full traceback on errors.")(command)
    return command


def tracking_option(command: Callable[..., Any]) -> Callable[..., Any]:
    command = click.option(
        "--tracking-uri",
        default=None,
        metavar="URI",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db).",
    )(command)
    return command


def quiet_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("-q", "--quiet", is_flag=True, help="No progress bars.")(command)


def jobs_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "-j",
        "--jobs",
        default=None,
        type=click.IntRange(min=1),
        metavar="N",
        help="Children run at once on this machine, each in its own process (default: cores // train.num_threads; 1: one after the other).",
    )(command)


REPEATABLE_SPEC_OPTIONS = (  # (flags, parameter, metavar, help), applied in this order: --help lists them reversed
    (("-g", "--grid"), "grid", "KEY=[V1,V2]", "Add a grid axis: -g method.replay.size=[100,200]."),
    (
        ("-o", "--override"),
        "overrides",
        "KEY=VALUE",
        "Dotted override, value read as YAML (a string option takes the text as typed): -o train.epochs=3 -o seeds=[0,1].",
    ),
    (("--skip",), "skip", "LABEL", "Leave out the grid point LABEL (as `suite show` lists them): --skip model=s3rec."),
    (("--only",), "only", "LABEL", "Run only the grid point LABEL (as `suite show` lists them); repeat for several."),
)


def spec_arguments(command: Callable[..., Any]) -> Callable[..., Any]:
    """SPEC_FILE and the repeatable options that change what it launches: -o, -g, --only, --skip."""
    for flags, parameter, metavar, text in REPEATABLE_SPEC_OPTIONS:
        command = click.option(*flags, parameter, multiple=True, metavar=metavar, help=text)(command)
    command = click.argument("spec_file", type=click.Path(dir_okay=False, path_type=Path))(command)
    return command


def results_hint(tracking_uri: str, parent_run_id: str) -> str:
    """The last line of a launch: the command that opens its runs, and where its results table lies."""
    from suite.tracking import Tracker

    table = Tracker(tracking_uri, parent_run_id).artifact_location("results.md")
    return f"open the results: {shlex.join(['suite', 'ui', '--tracking-uri', tracking_uri])}  (table: {table})"
