"""Turn a launch plan into MLflow runs: one parent per launch, one child per grid point and seed.

A launch reads top to bottom, like a torchtune recipe: close the runs of the store whose
process died, open the experiment and the parent run, run every child (here, or as Ray
tasks), read back the curves the children logged, log the results on the parent, close it.
Every input check already ran in ``suite.spec.plan``; from here on a problem is a failed
run (FAILED in MLflow, exit 1), never an input error.

A child's MLflow run is opened by the process that runs it, when it starts: its start time
and duration are its own, and its host and pid tags name the process that can die with it.
The launcher knows nothing about intents or items: it hands each child a ``RunContext`` and
collects the summary metrics the method returns.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Sequence
from pathlib import Path

from suite import spec as specs
from suite.api import Evaluation
from suite.checkpoints import CheckpointStore
from suite.child_run import run_child, run_child_in, without
from suite.errors import SuiteError
from suite.launch_types import ChildJob, ChildResult, LaunchResult, LaunchSite
from suite.tracking import (
    ERROR_TAG,
    NOTE_TAG,
    Tracker,
    close_open_children,
    close_stale_runs,
    describe_error,
    end_status,
    ensure_experiment,
    flatten,
    provenance_tags,
)

RESUMABLE = ("KILLED", "FAILED")


def launch(
    plan: specs.LaunchPlan,
    tracking_uri: str,
    command_line: str | None = None,
    executor: str = "local",
    ray_address: str | None = None,
    cpus_per_trial: float = 1.0,
    gpus_per_trial: float = 0.0,
    fail_fast: bool = True,
    quiet: bool = False,
    evaluation: Evaluation = "test",
    jobs: int = 1,
) -> LaunchResult:
    """Run every point of ``plan`` for every seed under one parent MLflow run.

    ``jobs`` > 1 runs that many local children at once, each in its own process
    (``suite.local_pool``); 1 runs them one after the other in this process.
    ``fail_fast`` stops at the first failed child (the results so far are still logged;
    children already running in parallel finish);
    ``evaluation="valid"`` (tuning) reaches every child's ``RunContext.evaluation``.
    Ctrl-C and SIGTERM close every open run KILLED and propagate.
    """
    close_stale_runs(tracking_uri)
    experiment_id = ensure_experiment(tracking_uri, plan.experiment, plan.base.description)
    tags = provenance_tags(command_line, plan.source)
    parent = _open_parent(tracking_uri, experiment_id, plan, tags)
    site = LaunchSite(tracking_uri, experiment_id, parent.run_id, tags, quiet, evaluation)
    children = [ChildJob(label, point, seed) for label, point in plan.points for seed in point.seeds]
    try:
        if executor == "ray":
            from suite.ray_launch import run_on_ray

            results = run_on_ray(children, site, ray_address, cpus_per_trial, gpus_per_trial)
        else:
            results = _run_locally(children, site, fail_fast, jobs, plan.base.report_metrics or ())
        _read_curves(results, children, tracking_uri, evaluation)
        table = _log_results(parent, results, plan)
    except BaseException as error:
        # the store itself may be what failed: the error that stopped the launch is the one that goes up
        with contextlib.suppress(Exception):
            close_open_children(tracking_uri, parent.run_id, end_status(error), f"launch stopped: {describe_error(error)}")
        with contextlib.suppress(Exception):
            _close(parent, error)
        raise
    failed = [result for result in results if result.error]
    if failed:
        parent.set_tags({ERROR_TAG: f"{len(failed)} of {len(results)} child runs failed"})
    parent.end("FAILED" if failed else "FINISHED")
    return LaunchResult(plan.experiment, experiment_id, parent.run_id, results, table)


def resume(run_id: str, tracking_uri: str, quiet: bool = False) -> ChildResult:
    """Continue a KILLED or FAILED child run in the same MLflow run, from the spec it logged.

    The method finds the state it saved with ``ctx.checkpoints.load()``. Everything that can
    reject the resume (unknown run, wrong status, a spec or data that no longer checks out, a
    checkpoint that fails its checksum or holds NaN) happens before the run is touched.
    """
    close_stale_runs(tracking_uri)  # a run whose process was SIGKILLed is still RUNNING until now
    tracker = Tracker.existing(tracking_uri, run_id)
    tags = tracker.tags()
    if tags.get("suite.kind") != "child":
        raise SuiteError(f"run {run_id} is not a child run of a suite launch; resume one of its child runs")
    status = tracker.status()
    if status not in RESUMABLE:
        alive = f" (process {tags.get('suite.pid')} on {tags.get('suite.host')} is still alive)" if status == "RUNNING" else ""
        raise SuiteError(f"run {run_id} is {status}{alive}; only KILLED or FAILED runs can be resumed")
    point = _logged_point(tracker)
    specs.preflight(point)
    with tempfile.TemporaryDirectory() as tmp:
        CheckpointStore(tracker, Path(tmp)).check()  # a changed or damaged checkpoint: exit 2, the run left as it was
    seed = int(tags.get("suite.seed", point.seeds[0]))
    tracker.reopen()
    tracker.set_tags({"suite.resumed": int(tags.get("suite.resumed", "0")) + 1})
    return run_child_in(tracker, tags.get("suite.point", point.name), point, seed, quiet, tags.get("suite.evaluation", "test"))


def _open_parent(tracking_uri: str, experiment_id: str, plan: specs.LaunchPlan, tags: dict[str, str]) -> Tracker:
    description = {NOTE_TAG: plan.base.description} if plan.base.description else {}
    parent = Tracker.create(
        tracking_uri,
        experiment_id,
        run_name=plan.experiment,
        tags={**tags, **description, "suite.kind": "parent", "suite.spec_source": plan.source},
    )
    parent.log_params(flatten(without(plan.base.to_dict(), "description")))
    parent.log_text(plan.base.to_yaml(), "spec.yaml")
    return parent


def _logged_point(tracker: Tracker) -> specs.ResolvedSpec:
    """The grid point a child ran, rebuilt from the spec.yaml it logged."""
    with tempfile.TemporaryDirectory() as tmp:
        spec_file = tracker.download_artifact("spec.yaml", tmp)
        if spec_file is None:
            raise SuiteError(f"run {tracker.run_id} has no spec.yaml artifact to rebuild its point from")
        tree = specs.load_tree(spec_file)
    return specs.resolve(tree, f"run {tracker.run_id} spec.yaml")


def _run_locally(jobs: list[ChildJob], site: LaunchSite, fail_fast: bool, workers: int, key_metrics: Sequence[str]) -> list[ChildResult]:
    if workers > 1 and len(jobs) > 1:
        from suite.local_pool import run_in_processes

        return run_in_processes(jobs, site, workers, fail_fast, key_metrics)
    results = []
    for job in jobs:
        results.append(run_child(job, site))
        if fail_fast and results[-1].error:
            break  # the later children are never opened
    return results


def _read_curves(results: list[ChildResult], jobs: list[ChildJob], tracking_uri: str, evaluation: Evaluation) -> None:
    """Each child's history of its method's ``curve_metric`` (or ``valid.<name>`` in a tuning launch), for the launch's plot."""
    by_child = {(job.label, job.seed): job for job in jobs}
    for result in results:
        job = by_child[(result.label, result.seed)]
        metric = job.point.method.curve_metric
        if not (metric and result.run_id):
            continue
        tracker = Tracker(tracking_uri, result.run_id)
        names = (metric, f"valid.{metric}") if evaluation == "valid" else (metric,)  # evaluation metrics carry the prefix
        for name in names:
            if history := tracker.metric_history(name):
                result.curves[name] = history
                break


def _close(tracker: Tracker, error: BaseException) -> None:
    tracker.set_tags({ERROR_TAG: describe_error(error)[:5000]})
    tracker.end(end_status(error))


def _log_results(parent: Tracker, results: list[ChildResult], plan: specs.LaunchPlan) -> str:
    """The launch's results on the parent run (``suite.report`` builds them); the table text, for the terminal."""
    from suite.report import log_launch_results

    return log_launch_results(parent, results, plan)
