"""The ``suite`` command: run, sweep, tune, resume, show, list, runs, report, export, readme-tables, ui.

The exit-code contract and the options every command shares are in ``suite.cli_support``.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import click

from suite import registry
from suite import spec as specs
from suite.cli_support import (
    EXIT_RUN_FAILED,
    common,
    guarded,
    jobs_option,
    noting_closed_runs,
    quiet_option,
    results_hint,
    spec_arguments,
    tracking_option,
)
from suite.dashboard import dashboard_url, exposure_warning
from suite.devices import check_points_devices
from suite.errors import SuiteError
from suite.sequential.cli import convert_sequences_command
from suite.tracking import default_tracking_uri, metric_key, open_store

Names = tuple[str, ...]
"""A repeatable option's values (-o, -g, --only, --skip)."""


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
@spec_arguments
@jobs_option
@tracking_option
@quiet_option
@common
@guarded
def run(
    spec_file: Path, overrides: Names, grid: Names, only: Names, skip: Names, jobs: int | None, tracking_uri: str | None, quiet: bool
) -> None:
    """Run SPEC_FILE: one MLflow parent run, one child per seed (and grid point); no new run starts after a failed one."""
    plan = specs.plan(spec_file, overrides, grid, only=only, skip=skip)
    _launch(plan, tracking_uri, quiet, jobs=jobs, executor="local", fail_fast=True)


@main.command()
@spec_arguments
@click.option("--ray", "use_ray", is_flag=True, help="Run the points as Ray tasks (local Ray, or the cluster at --address).")
@click.option("--address", default=None, help="Ray cluster address (e.g. auto or ray://host:10001); implies --ray.")
@click.option("--cpus-per-trial", default=1.0, show_default=True, type=click.FloatRange(min=0.01), help="Ray CPUs reserved per trial.")
@click.option(
    "--gpus-per-trial",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0.0),
    help="Ray GPUs reserved per trial; in the trial, train.device: cuda is the GPU Ray assigned.",
)
@jobs_option
@tracking_option
@quiet_option
@common
@guarded
def sweep(
    spec_file: Path,
    overrides: Names,
    grid: Names,
    only: Names,
    skip: Names,
    use_ray: bool,
    address: str | None,
    cpus_per_trial: float,
    gpus_per_trial: float,
    jobs: int | None,
    tracking_uri: str | None,
    quiet: bool,
) -> None:
    """Run every grid point x seed of SPEC_FILE; a failed point does not stop the others."""
    executor = "ray" if (use_ray or address) else "local"
    if executor == "ray" and jobs is not None:
        raise SuiteError("--jobs runs children on this machine; with --ray, Ray places them: use --cpus-per-trial")
    if executor == "local" and gpus_per_trial:
        raise SuiteError("--gpus-per-trial reserves Ray GPUs: add --ray (or --address)")
    _launch(
        specs.plan(spec_file, overrides, grid, only=only, skip=skip),
        tracking_uri,
        quiet,
        jobs=jobs,
        executor=executor,
        fail_fast=False,
        ray_address=address,
        cpus_per_trial=cpus_per_trial,
        gpus_per_trial=gpus_per_trial,
    )


@main.command()
@click.argument("run_id")
@tracking_option
@quiet_option
@common
@guarded
def resume(run_id: str, tracking_uri: str | None, quiet: bool) -> None:
    """Continue the KILLED or FAILED child run RUN_ID in place, from its last checkpoint."""
    from suite.launch_types import ChildRunsFailed
    from suite.launcher import resume as resume_run

    uri = tracking_uri or default_tracking_uri()
    open_store(uri, must_exist=True)
    with noting_closed_runs():
        result = resume_run(run_id, uri, quiet=quiet)
    if result.error:
        raise ChildRunsFailed([result], 1)
    for key, value in result.summary.items():
        click.echo(f"{metric_key(key)}: {value:.6g}")


@main.command()
@spec_arguments
@common
@guarded
def show(spec_file: Path, overrides: Names, grid: Names, only: Names, skip: Names) -> None:
    """Print the fully resolved spec (defaults filled in) and its grid points."""
    plan = specs.plan(spec_file, overrides, grid, check_data=False, only=only, skip=skip)
    click.echo(plan.base.to_yaml().rstrip())
    if len(plan.points) > 1:
        click.echo(f"# {len(plan.points)} grid points x {len(plan.base.seeds)} seeds:")
        for label, _ in plan.points:
            click.echo(f"#   {label}")


@main.command(name="list")
@common
@guarded
def list_entries() -> None:
    """List every registered scenario, model and method and the distribution it comes from."""
    rows = [("KIND", "NAME", "FROM", "TARGET")]
    for kind in registry.GROUPS:
        for entry in registry.registrations(kind).values():
            rows.append((kind, entry.name, f"{entry.distribution} {entry.version}", entry.target))
    _echo_table(rows)


@main.command()
@click.option("--stale", is_flag=True, help="Only runs whose process is gone (or cannot be checked from this host).")
@tracking_option
@common
@guarded
def runs(stale: bool, tracking_uri: str | None) -> None:
    """List the store's runs still marked RUNNING, and whether their process is alive.

    PROCESS is alive, gone (killed or crashed: the next launch or resume on this store marks
    the run KILLED), or unknown (started on another host, or by another tool: check there).
    """
    from suite.tracking import open_runs

    uri = tracking_uri or default_tracking_uri()
    open_store(uri, must_exist=True)
    found = [run for run in open_runs(uri) if not stale or run.state != "alive"]
    if not found:
        click.echo("(no stale runs)" if stale else "(no open runs)")
        return
    rows = [("RUN ID", "EXPERIMENT", "NAME", "KIND", "STATUS", "HOST", "PID", "PROCESS")]
    rows += [(r.run_id, r.experiment, r.name, r.kind, r.status, r.host, r.pid, r.state) for r in found]
    _echo_table(rows)


def _echo_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


@main.command()
@click.argument("experiments", nargs=-1, required=True, metavar="EXPERIMENT...")
@click.option(
    "-m",
    "--metric",
    "metrics",
    multiple=True,
    help="Metric column in any spelling: NDCG@10, test.ndcg@10, test.ndcg_at_10 (repeatable; default: the spec's report.metrics).",
)
@click.option("--launch", default="latest", show_default=True, help="Whose runs: 'latest' launch, 'all' launches, or a parent run id.")
@click.option(
    "--baseline", default=None, metavar="LABEL", help="Add the paired difference to this row (default: the spec's report.baseline)."
)
@click.option("--format", "fmt", type=click.Choice(["md", "csv", "latex"]), default="md", show_default=True, help="Table format.")
@click.option("--group-by", "group_by", multiple=True, metavar="KEY", help="Label rows by these params instead of the values that differ.")
@click.option(
    "--repeats",
    type=click.Choice(["latest", "first", "all"]),
    default="latest",
    show_default=True,
    help="A seed run more than once in a row: pool its latest or first finished run, or all of them.",
)
@tracking_option
@common
@guarded
def report(
    experiments: tuple[str, ...],
    metrics: tuple[str, ...],
    launch: str,
    baseline: str | None,
    fmt: str,
    group_by: tuple[str, ...],
    repeats: str,
    tracking_uri: str | None,
) -> None:
    """Print the finished runs of EXPERIMENT... as mean ± std over seeds (one run per seed), one row per grid point."""
    from suite.report import bullets
    from suite.report import report as make_report

    uri = tracking_uri or default_tracking_uri()
    open_store(uri, must_exist=True)  # reading never creates a store
    made = make_report(experiments, uri, metrics or None, launch, fmt, baseline, group_by, repeats)
    click.echo(made.text.rstrip("\n"))
    if fmt == "md":
        click.echo("\n" + bullets(made.notes))
    else:  # keep the CSV or LaTeX clean for pasting: notes go to stderr
        click.echo("\n".join(made.notes), err=True)


@main.command(name="export")
@click.argument("experiments", nargs=-1, required=True, metavar="EXPERIMENT...")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="The CSV to write (e.g. results/NAME.csv).")
@click.option("--launch", default="all", show_default=True, help="Whose runs: 'all' launches, the 'latest', or a parent run id.")
@click.option(
    "--append", is_flag=True, help="Keep the file's rows whose settings and seed the store does not have (runs from another store)."
)
@tracking_option
@common
@guarded
def export_command(experiments: tuple[str, ...], out: Path, launch: str, append: bool, tracking_uri: str | None) -> None:
    """Write one CSV row per child run of EXPERIMENT... (every final metric, wall time, commit, settings), to commit."""
    from suite.export import export

    written = export(experiments, out, tracking_uri or default_tracking_uri(), launch, append)
    kept = f", {written.kept} kept from the file" if append else ""
    click.echo(f"{out}: {len(written.rows)} row(s), {written.from_store} from the store{kept}")


@main.command(name="readme-tables")
@click.argument("readme", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--check", is_flag=True, help="Change nothing; exit 1 with a diff when a table does not match its CSV.")
@common
@guarded
def readme_tables(readme: Path, check: bool) -> None:
    """Regenerate README's measured tables (between <!-- results: CSV ... --> markers) from the results CSVs."""
    from suite.readme_tables import update

    outcome = update(readme, check)
    if check and outcome.diff:
        click.echo(outcome.diff.rstrip("\n"))
        click.echo(f"{readme}: tables differ from their CSVs; run `suite readme-tables {readme}` (make tables)", err=True)
        sys.exit(EXIT_RUN_FAILED)
    state = "up to date" if not outcome.diff else "regenerated"
    click.echo(f"{readme}: {outcome.blocks} results table(s) {state}")


@main.command()
@spec_arguments
@click.option("--objective", required=True, metavar="METRIC", help="Validation metric to optimize: valid.* or best_valid.* (never test).")
@click.option("--maximize/--minimize", default=True, show_default=True, help="Whether a larger objective is better.")
@click.option(
    "--budget", default=None, type=click.IntRange(min=1), metavar="N", help="Run a seeded sample of N grid points when the grid is larger."
)
@click.option("--sample-seed", default=0, show_default=True, type=int, help="Seed of the grid sample (--budget).")
@click.option("--experiment", default=None, help="MLflow experiment of the sweep (default: the spec's experiment + '-tune').")
@jobs_option
@tracking_option
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@common
@guarded
def tune(
    spec_file: Path,
    overrides: Names,
    grid: Names,
    only: Names,
    skip: Names,
    objective: str,
    maximize: bool,
    budget: int | None,
    sample_seed: int,
    experiment: str | None,
    jobs: int | None,
    tracking_uri: str | None,
    quiet: bool,
) -> None:
    """Choose SPEC_FILE's grid values on validation data: best mean OBJECTIVE over the spec's seeds."""
    from suite.launch_types import ChildRunsFailed
    from suite.local_pool import jobs_for
    from suite.tune import check_objective, render, run_tuning, tuning_plan

    check_objective(objective)
    plan, grid_size = tuning_plan(str(spec_file), overrides, grid, budget, sample_seed, experiment, (only, skip))
    check_points_devices(plan.points)  # tuning trains on this machine
    uri = tracking_uri or default_tracking_uri()
    runs = sum(len(point.seeds) for _, point in plan.points)
    click.echo(
        f"{plan.experiment}: tuning {len(plan.points)} of {grid_size} grid point(s) x seeds = {runs} run(s) on validation data", err=True
    )
    argv = click.get_current_context().meta.get("suite.argv", sys.argv[1:])
    open_store(uri)
    with noting_closed_runs():
        tuning = run_tuning(
            plan, uri, objective, maximize, grid_size, command_line=shlex.join(["suite", *argv]), quiet=quiet, jobs=jobs_for(plan, jobs)
        )
    click.echo(render(tuning).rstrip("\n"))
    click.echo(f"MLflow experiment '{tuning.experiment}', parent run {tuning.parent_run_id}: tuning.json, tuned.yaml", err=True)
    if tuning.failed:
        raise ChildRunsFailed(tuning.failed, runs)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind; keep loopback unless the network is trusted.")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@tracking_option
@common
@guarded
def ui(host: str, port: int, tracking_uri: str | None) -> None:
    """Start the MLflow dashboard on the suite's store; it stops with this command (Ctrl-C, SIGTERM, a closed terminal, a kill)."""
    from suite import dashboard
    from suite.tracking import latest_experiment_id

    uri = tracking_uri or default_tracking_uri()
    dashboard.check_port(host, port)  # a busy port is exit 2 before anything starts
    warning = exposure_warning(host)
    if warning:
        click.echo(warning, err=True)
    url = dashboard_url(host, port, latest_experiment_id(uri))  # also gives a new store its schema, quietly
    server = dashboard.start(uri, host, port)
    click.echo(f"starting the MLflow server on {host}:{port} (its log: {server.log_path})", err=True)
    try:
        dashboard.wait_until_serving(server, host, port)
        click.echo(f"MLflow dashboard: {url}  (store: {uri}; Ctrl-C stops it)")
        sys.stdout.flush()
        code = server.watcher.wait()
        if code:
            raise dashboard.ServerFailed(f"the MLflow server exited with code {code}; its log: {server.log_path}")
    except dashboard.ServerFailed as failure:
        click.echo(f"error: {failure}", err=True)
        sys.exit(EXIT_RUN_FAILED)
    finally:
        server.stop()


def _launch(plan: specs.LaunchPlan, tracking_uri: str | None, quiet: bool, jobs: int | None, **how: Any) -> None:
    from suite.launch_types import ChildRunsFailed
    from suite.launcher import launch
    from suite.local_pool import jobs_for

    if how["executor"] == "local":  # the children train here: their device must exist here (suite.devices)
        check_points_devices(plan.points)
    uri = tracking_uri or default_tracking_uri()
    open_store(uri)  # an unusable store is one line now, before anything is printed or opened
    runs = sum(len(point.seeds) for _, point in plan.points)
    workers = jobs_for(plan, jobs) if how["executor"] == "local" else 1
    at_once = f", {workers} at a time" if workers > 1 else ""
    click.echo(f"{plan.experiment}: {len(plan.points)} point(s) x seeds = {runs} run(s){at_once}, tracking at {uri}", err=True)
    argv = click.get_current_context().meta.get("suite.argv", sys.argv[1:])
    with noting_closed_runs():
        result = launch(plan, uri, command_line=shlex.join(["suite", *argv]), quiet=quiet, jobs=workers, **how)
    click.echo(result.table)
    click.echo(f"MLflow experiment '{result.experiment}' (id {result.experiment_id}), parent run {result.parent_run_id}", err=True)
    click.echo(results_hint(uri, result.parent_run_id), err=True)
    if result.failed:
        raise ChildRunsFailed(result.failed, len(result.children))


main.add_command(convert_sequences_command, name="convert-sequences")


if __name__ == "__main__":
    main()
