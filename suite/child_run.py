"""One child run: open its MLflow run, run the method in it with a fresh run folder, close it.

Shared by every way children run (in the launching process, in a spawned process of
``local_pool``, in a Ray task of ``ray_launch``) and by ``suite resume``, which reopens a run and
continues it. A failure comes back in the ``ChildResult``; Ctrl-C and SIGTERM propagate and
the run ends KILLED.
"""

from __future__ import annotations

import shutil
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from suite import spec as specs
from suite.api import RunContext
from suite.checkpoints import CheckpointStore
from suite.launch_types import ChildJob, ChildResult, LaunchSite
from suite.paths import cache_root
from suite.seeding import seed_everything
from suite.tracking import (
    NOTE_TAG,
    Tracker,
    describe_error,
    flatten,
    metric_key,
    run_status,
)

RESUMABLE = ("KILLED", "FAILED")


def run_child(job: ChildJob, site: LaunchSite, opened: Callable[[str], None] | None = None) -> ChildResult:
    """Open the child's MLflow run now, run the method in it, close it FINISHED, FAILED or KILLED.

    A failure comes back in the result; Ctrl-C and SIGTERM propagate (the run ends KILLED).
    ``opened`` hears the run id as soon as the run exists (a process pool closes it if the child dies).
    """
    tracker = _open_child(job, site)
    if opened is not None:
        opened(tracker.run_id)
    return continue_child(tracker, job, site)


def continue_child(tracker: Tracker, job: ChildJob, site: LaunchSite) -> ChildResult:
    """Run the child in its open run (new, or reopened: the method continues from its last checkpoint)."""
    return run_child_in(tracker, job.label, job.point, job.seed, site.quiet, site.evaluation)


def run_child_in(tracker: Tracker, label: str, point: specs.ResolvedSpec, seed: int, quiet: bool, evaluation: str) -> ChildResult:
    result = ChildResult(label=label, seed=seed, run_id=tracker.run_id)
    run_dir = Path(tempfile.mkdtemp(prefix="suite-run-"))
    try:
        with run_status(tracker):
            context = RunContext(
                seed=seed,
                scenario_entry=point.scenario,
                scenario_options=point.scenario_options,
                model_entry=point.model,
                model_options=point.model_options,
                method_options=point.method_options,
                train_options=point.train_options,
                tracker=tracker,
                run_dir=run_dir,
                cache_dir=cache_root(),
                quiet=quiet,
                checkpoints=CheckpointStore(tracker, run_dir),
                evaluation=evaluation,
            )
            seed_everything(seed)  # every method's contract: it starts from generators seeded by its seed
            result.summary = {key: float(value) for key, value in (point.method.run(context) or {}).items()}
            _log_summary(tracker, result.summary)
    except (Exception, SystemExit) as error:  # the run is FAILED; the launch goes on (or stops if fail-fast)
        result.error = describe_error(error)
        result.traceback = traceback.format_exc()
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    return result


def _open_child(job: ChildJob, site: LaunchSite) -> Tracker:
    tree = child_tree(job.point, job.seed)
    description = {NOTE_TAG: job.point.description} if job.point.description else {}
    tracker = Tracker.create(
        site.tracking_uri,
        site.experiment_id,
        run_name=_run_name(job),
        tags={
            **site.tags,
            **description,
            "mlflow.parentRunId": site.parent_run_id,
            "suite.kind": "child",
            "suite.point": job.label,
            "suite.seed": str(job.seed),
            "suite.spec_source": job.point.source,
            "suite.evaluation": site.evaluation,
        },
    )
    tracker.log_params({**flatten(without(tree, "description", "seeds")), "seed": job.seed})
    tracker.log_text(yaml.safe_dump(tree, sort_keys=False), "spec.yaml")
    return tracker


def _run_name(job: ChildJob) -> str:
    """``<point> seed=<n>``; trainers that serve many models put the model first (``sasrec seed=0``)."""
    point = job.point
    named = point.method.names_runs_after_model and point.model.name not in job.label
    return f"{point.model.name} {job.label} seed={job.seed}" if named else f"{job.label} seed={job.seed}"


def child_tree(point: specs.ResolvedSpec, seed: int) -> dict[str, Any]:
    """The spec that reproduces exactly this child: the point's values and its one seed (logged as spec.yaml)."""
    tree = without(point.to_dict(), "grid")
    tree["seeds"] = [seed]
    tree["experiment"] = point.experiment
    return tree


def run_child_from_tree(
    label: str, tree: dict[str, Any], source: str, seed: int, site: LaunchSite, opened: Callable[[str], None] | None = None
) -> ChildResult:
    """A child in another process (a Ray task, a pool process): rebuilds its point from the child's spec tree
    (the one dict round trip) and runs it."""
    return run_child(ChildJob(label, specs.resolve(tree, source), seed), site, opened)


def _log_summary(tracker: Tracker, summary: dict[str, float]) -> None:
    """Log summary values the method did not log itself, so every child has them as metrics."""
    logged = tracker.metrics()
    missing = {key: value for key, value in summary.items() if metric_key(key) not in logged}
    if missing:
        tracker.log_metrics(missing)
    tracker.log_dict(summary, "summary.json")


def without(tree: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: value for key, value in tree.items() if key not in keys}
