"""The ``suite`` command: run, sweep, tune, show, list, report, ui.

Every command turns bad input into one line on stderr and exit code 2 before any MLflow
run exists; a run that fails later is closed FAILED in MLflow and exits non-zero too.
``--debug`` adds the traceback.
"""

from __future__ import annotations

import functools
import shlex
import subprocess
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from suite import registry
from suite import spec as specs
from suite.errors import SuiteError
from suite.progress import set_quiet
from suite.sequential.cli import convert_sequences_command
from suite.tracking import DEFAULT_ARTIFACTS, default_tracking_uri

EXIT_USER_ERROR = 2
EXIT_RUN_FAILED = 1
EXIT_INTERRUPTED = 130


def _guarded(command: Callable[..., Any]) -> Callable[..., Any]:
    """Map failures to one readable line and an exit code; tracebacks only with --debug."""

    @functools.wraps(command)
    def wrapper(*args: Any, debug: bool = False, **kwargs: Any) -> Any:
        from suite.launcher import ChildRunFailed

        try:
            return command(*args, **kwargs)
        except SuiteError as error:
            _fail(f"error: {error}", EXIT_USER_ERROR, debug)
        except ChildRunFailed as failure:
            code = EXIT_USER_ERROR if failure.result.user_error else EXIT_RUN_FAILED
            _fail(f"error: {failure.describe()}", code, debug, failure.cause)
        except KeyboardInterrupt:
            _fail("interrupted: open runs were marked KILLED", EXIT_INTERRUPTED, debug)
        except Exception as error:
            _fail(f"error: {type(error).__name__}: {error}", EXIT_RUN_FAILED, debug)

    return wrapper


def _fail(message: str, code: int, debug: bool, cause: BaseException | None = None) -> None:
    if debug:
        if cause is not None:
            traceback.print_exception(cause)
        else:
            traceback.print_exc()
    click.echo(message.splitlines()[0] if message else "error", err=True)
    sys.exit(code)


def _common(command: Callable[..., Any]) -> Callable[..., Any]:
    command = click.option("--debug", is_flag=True, help="Show the full traceback on errors.")(command)
    return command


def _tracking(command: Callable[..., Any]) -> Callable[..., Any]:
    command = click.option(
        "--tracking-uri",
        default=None,
        metavar="URI",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db).",
    )(command)
    return command


def _spec_arguments(command: Callable[..., Any]) -> Callable[..., Any]:
    command = click.option(
        "-o",
        "--override",
        "overrides",
        multiple=True,
        metavar="KEY=VALUE",
        help="Dotted override, value parsed as YAML: -o train.epochs=3 -o seeds=[0,1].",
    )(command)
    command = click.argument("spec_file", type=click.Path(dir_okay=False, path_type=Path))(command)
    return command


class SuiteGroup(click.Group):
    """Keeps the exact arguments, so every run records the command line that launched it."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["suite.argv"] = list(args)
        return super().parse_args(ctx, args)


@click.group(cls=SuiteGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cl-suite")
def main() -> None:
    """Continual SLU (Avalanche) and sequential recommendation (RecBole) experiments, tracked in MLflow."""


@main.command()
@_spec_arguments
@_tracking
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@_common
@_guarded
def run(spec_file: Path, overrides: tuple[str, ...], tracking_uri: str | None, quiet: bool) -> None:
    """Run SPEC_FILE: one MLflow parent run, one child per seed (and grid point)."""
    _launch(spec_file, overrides, (), tracking_uri, quiet, executor="local", fail_fast=True)


@main.command()
@_spec_arguments
@click.option("-g", "--grid", "grid", multiple=True, metavar="KEY=[V1,V2]", help="Add a grid axis: -g method.replay.size=[100,200].")
@click.option("--ray", "use_ray", is_flag=True, help="Run the points as Ray tasks (local Ray, or the cluster at --address).")
@click.option("--address", default=None, help="Ray cluster address (e.g. auto or ray://host:10001); implies --ray.")
@click.option("--cpus-per-trial", default=1.0, show_default=True, type=click.FloatRange(min=0.01), help="Ray CPUs reserved per trial.")
@_tracking
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@_common
@_guarded
def sweep(
    spec_file: Path,
    overrides: tuple[str, ...],
    grid: tuple[str, ...],
    use_ray: bool,
    address: str | None,
    cpus_per_trial: float,
    tracking_uri: str | None,
    quiet: bool,
) -> None:
    """Run every grid point x seed of SPEC_FILE; a failed point does not stop the others."""
    executor = "ray" if (use_ray or address) else "local"
    _launch(
        spec_file,
        overrides,
        grid,
        tracking_uri,
        quiet,
        executor=executor,
        fail_fast=False,
        ray_address=address,
        cpus_per_trial=cpus_per_trial,
    )


@main.command()
@_spec_arguments
@_common
@_guarded
def show(spec_file: Path, overrides: tuple[str, ...]) -> None:
    """Print the fully resolved spec (defaults filled in) and its grid points."""
    plan = specs.plan(spec_file, overrides, check_data=False)
    click.echo(plan.base.to_yaml().rstrip())
    if len(plan.points) > 1:
        click.echo(f"# {len(plan.points)} grid points x {len(plan.base.seeds)} seeds:")
        for label, _ in plan.points:
            click.echo(f"#   {label}")


@main.command(name="list")
@_common
@_guarded
def list_plugins() -> None:
    """List every registered scenario, model and method and the distribution it comes from."""
    rows = [("KIND", "NAME", "FROM", "TARGET")]
    for kind in registry.GROUPS:
        for entry in registry.registrations(kind).values():
            rows.append((kind, entry.name, f"{entry.distribution} {entry.version}", entry.target))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


@main.command()
@click.argument("experiments", nargs=-1, required=True, metavar="EXPERIMENT...")
@click.option(
    "-m",
    "--metric",
    "metrics",
    multiple=True,
    help="Metric column, as the spec writes it (repeatable; default: the spec's report.metrics).",
)
@click.option("--launch", default="latest", show_default=True, help="Whose runs: 'latest' launch, 'all' launches, or a parent run id.")
@click.option(
    "--baseline", default=None, metavar="LABEL", help="Add the paired difference to this row (default: the spec's report.baseline)."
)
@click.option("--format", "fmt", type=click.Choice(["md", "csv", "latex"]), default="md", show_default=True, help="Table format.")
@click.option("--group-by", "group_by", multiple=True, metavar="KEY", help="Label rows by these params instead of the values that differ.")
@_tracking
@_common
@_guarded
def report(
    experiments: tuple[str, ...],
    metrics: tuple[str, ...],
    launch: str,
    baseline: str | None,
    fmt: str,
    group_by: tuple[str, ...],
    tracking_uri: str | None,
) -> None:
    """Print the finished runs of EXPERIMENT... as mean ± std over seeds, one row per grid point."""
    from suite.report import bullets
    from suite.report import report as make_report

    made = make_report(experiments, tracking_uri or default_tracking_uri(), metrics or None, launch, fmt, baseline, group_by)
    click.echo(made.text.rstrip("\n"))
    if fmt == "md":
        click.echo("\n" + bullets(made.notes))
    else:  # keep the CSV or LaTeX clean for pasting: notes go to stderr
        click.echo("\n".join(made.notes), err=True)


@main.command()
@_spec_arguments
@click.option("-g", "--grid", "grid", multiple=True, metavar="KEY=[V1,V2]", help="Add a grid axis: -g method.nspt.temperature=[0.05,0.1].")
@click.option("--objective", required=True, metavar="METRIC", help="Validation metric to optimize: valid.* or best_valid.* (never test).")
@click.option("--maximize/--minimize", default=True, show_default=True, help="Whether a larger objective is better.")
@click.option(
    "--budget", default=None, type=click.IntRange(min=1), metavar="N", help="Run a seeded sample of N grid points when the grid is larger."
)
@click.option("--sample-seed", default=0, show_default=True, type=int, help="Seed of the grid sample (--budget).")
@click.option("--experiment", default=None, help="MLflow experiment of the sweep (default: the spec's experiment + '-tune').")
@_tracking
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@_common
@_guarded
def tune(
    spec_file: Path,
    overrides: tuple[str, ...],
    grid: tuple[str, ...],
    objective: str,
    maximize: bool,
    budget: int | None,
    sample_seed: int,
    experiment: str | None,
    tracking_uri: str | None,
    quiet: bool,
) -> None:
    """Choose SPEC_FILE's grid values on validation data: best mean OBJECTIVE over the spec's seeds."""
    from suite.launcher import ChildRunFailed
    from suite.tune import check_objective, render, run_tuning, tuning_plan

    check_objective(objective)
    set_quiet(quiet)
    plan, grid_size = tuning_plan(str(spec_file), overrides, grid, budget, sample_seed, experiment)
    uri = tracking_uri or default_tracking_uri()
    runs = sum(len(point.seeds) for _, point in plan.points)
    click.echo(
        f"{plan.experiment}: tuning {len(plan.points)} of {grid_size} grid point(s) x seeds = {runs} run(s) on validation data", err=True
    )
    argv = click.get_current_context().meta.get("suite.argv", sys.argv[1:])
    tuning = run_tuning(plan, uri, objective, maximize, grid_size, command_line=shlex.join(["suite", *argv]))
    click.echo(render(tuning).rstrip("\n"))
    click.echo(f"MLflow experiment '{tuning.experiment}', parent run {tuning.parent_run_id}: tuning.json, tuned.yaml", err=True)
    if tuning.failed:
        first = tuning.failed[0]
        raise ChildRunFailed(first, RuntimeError(first.error), len(tuning.failed), runs)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind; keep loopback unless the network is trusted.")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@_tracking
@_common
@_guarded
def ui(host: str, port: int, tracking_uri: str | None) -> None:
    """Start the MLflow dashboard on the suite's store."""
    uri = tracking_uri or default_tracking_uri()
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri, "--host", host, "--port", str(port), "--workers", "1"]
    if uri.startswith("sqlite:///"):
        command += ["--artifacts-destination", str(Path(uri[len("sqlite:///") :]).parent / DEFAULT_ARTIFACTS)]
    click.echo(f"MLflow dashboard: http://{host}:{port}  (store: {uri}; Ctrl-C stops it)", err=False)
    sys.stdout.flush()
    server = subprocess.Popen(command)
    try:
        sys.exit(server.wait())
    except KeyboardInterrupt:
        server.terminate()
        server.wait(timeout=10)


def _launch(spec_file: Path, overrides: tuple[str, ...], grid: tuple[str, ...], tracking_uri: str | None, quiet: bool, **how: Any) -> None:
    from suite.launcher import ChildRunFailed, launch
    from suite.report import format_table, summarize

    set_quiet(quiet)
    plan = specs.plan(spec_file, overrides, grid)
    uri = tracking_uri or default_tracking_uri()
    runs = sum(len(point.seeds) for _, point in plan.points)
    click.echo(f"{plan.experiment}: {len(plan.points)} point(s) x seeds = {runs} run(s), tracking at {uri}", err=True)
    argv = click.get_current_context().meta.get("suite.argv", sys.argv[1:])
    result = launch(plan, uri, command_line=shlex.join(["suite", *argv]), **how)
    rows = [{"point": child.label, "seed": child.seed, **child.summary} for child in result.children if not child.error]
    click.echo(format_table(summarize(rows, ["point"], plan.base.report_metrics)))
    click.echo(f"MLflow experiment '{result.experiment}' (id {result.experiment_id}), parent run {result.parent_run_id}", err=True)
    if result.failed:
        raise ChildRunFailed(result.failed[0], RuntimeError(result.failed[0].error), len(result.failed), len(result.children))


main.add_command(convert_sequences_command, name="convert-sequences")


if __name__ == "__main__":
    main()
