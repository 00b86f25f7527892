"""Turn a launch plan into MLflow runs: one parent per launch, one child per grid point and seed.

The launcher knows nothing about intents or items: it resolves the spec, opens the runs,
hands each child a ``RunContext`` and collects the summary metrics the method returns.
Children run in this process, or as Ray tasks (``executor="ray"``) that log into runs the
driver created, so the parent/child tree is the same either way.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient

from suite import spec as specs
from suite.api import RunContext
from suite.checkpoints import CheckpointStore
from suite.errors import SuiteError
from suite.paths import cache_root
from suite.progress import is_quiet, set_quiet
from suite.seeding import seed_everything
from suite.tracking import Tracker, flatten, get_or_create_experiment, metric_key, provenance_tags, run_status


@dataclass
class ChildResult:
    """What one child run ended with."""

    label: str
    seed: int
    run_id: str
    summary: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    user_error: bool = False


@dataclass
class LaunchResult:
    experiment: str
    experiment_id: str
    parent_run_id: str
    children: list[ChildResult]

    @property
    def failed(self) -> list[ChildResult]:
        return [child for child in self.children if child.error]


class ChildRunFailed(Exception):
    """A child run raised; the runs are closed, this carries the one-line reason."""

    def __init__(self, result: ChildResult, cause: BaseException, failed: int = 1, total: int = 1):
        super().__init__(result.error)
        self.result = result
        self.cause = cause
        self.failed = failed
        self.total = total

    def describe(self) -> str:
        """One line: which run failed (and how many others did), where to find it, why."""
        result = self.result
        line = f"run '{result.label} seed={result.seed}' (MLflow run {result.run_id}) failed: {result.error}"
        return f"{self.failed} of {self.total} runs failed; first: {line}" if self.total > 1 else line


def launch(
    plan: specs.LaunchPlan,
    tracking_uri: str,
    command_line: str | None = None,
    executor: str = "local",
    ray_address: str | None = None,
    cpus_per_trial: float = 1.0,
    fail_fast: bool = True,
) -> LaunchResult:
    """Run every point of ``plan`` for every seed under one parent MLflow run."""
    client = MlflowClient(tracking_uri)
    experiment_id = get_or_create_experiment(client, plan.experiment, tracking_uri)
    tags = provenance_tags(command_line)
    parent = _open_parent(client, experiment_id, plan, tags, tracking_uri)
    children = [
        (label, point, seed, _open_child(client, experiment_id, parent.run_id, label, point, seed, tags, tracking_uri))
        for label, point in plan.points
        for seed in point.seeds
    ]
    results: list[ChildResult] = []
    try:
        with run_status(parent):
            if executor == "ray":
                results = _run_on_ray(children, tracking_uri, ray_address, cpus_per_trial)
            else:
                results = _run_locally(children, tracking_uri, fail_fast)
            _log_results(parent, results, plan)
            failed = [result for result in results if result.error]
            if failed:  # the parent ends FAILED too, but every finished child is kept
                raise ChildRunFailed(failed[0], RuntimeError(failed[0].error))
    except ChildRunFailed:
        if fail_fast or not results:
            raise
    return LaunchResult(plan.experiment, experiment_id, parent.run_id, results)


def run_child(point_tree: dict[str, Any], source: str, seed: int, label: str, tracking_uri: str, run_id: str) -> ChildResult:
    """Run one child in this process; the MLflow run ends FINISHED, FAILED or KILLED.

    Importable on its own so that a Ray worker can call it with plain data.
    """
    tracker = Tracker(tracking_uri, run_id)
    result = ChildResult(label=label, seed=seed, run_id=run_id)
    run_dir = Path(tempfile.mkdtemp(prefix="suite-run-"))
    try:
        with run_status(tracker):
            tracker.client.update_run(run_id, status="RUNNING")
            point = specs.resolve(point_tree, source)
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
                quiet=is_quiet(),
                checkpoints=CheckpointStore(tracker, run_dir),
            )
            seed_everything(seed)
            result.summary = {key: float(value) for key, value in (point.method.run(context) or {}).items()}
            _log_summary(tracker, result.summary)
    except KeyboardInterrupt:
        raise
    except BaseException as error:
        result.error = f"{type(error).__name__}: {error}" if not isinstance(error, SuiteError) else str(error)
        result.user_error = isinstance(error, SuiteError)
        raise ChildRunFailed(result, error) from error
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    return result


def _open_parent(client: MlflowClient, experiment_id: str, plan: specs.LaunchPlan, tags: dict[str, str], tracking_uri: str) -> Tracker:
    run = client.create_run(
        experiment_id, run_name=f"{plan.experiment}", tags={**tags, "suite.kind": "parent", "suite.spec_source": plan.source}
    )
    parent = Tracker(tracking_uri, run.info.run_id)
    parent.log_params(flatten(_without(plan.base.to_dict(), "description")))
    parent.log_text(plan.base.to_yaml(), "spec.yaml")
    return parent


def _open_child(
    client: MlflowClient,
    experiment_id: str,
    parent_id: str,
    label: str,
    point: specs.ResolvedSpec,
    seed: int,
    tags: dict[str, str],
    tracking_uri: str,
) -> str:
    tree = _child_tree(point, seed)
    run = client.create_run(
        experiment_id,
        run_name=f"{label} seed={seed}",
        tags={
            **tags,
            "mlflow.parentRunId": parent_id,
            "suite.kind": "child",
            "suite.point": label,
            "suite.seed": str(seed),
            "suite.spec_source": point.source,
        },
    )
    client.update_run(run.info.run_id, status="SCHEDULED")  # RUNNING once a worker picks it up
    child = Tracker(tracking_uri, run.info.run_id)
    child.log_params({**flatten(_without(tree, "description", "seeds")), "seed": seed})
    child.log_text(_yaml(tree), "spec.yaml")
    return run.info.run_id


def _child_tree(point: specs.ResolvedSpec, seed: int) -> dict[str, Any]:
    """The spec that reproduces exactly this child: the point's values and its one seed."""
    tree = _without(point.to_dict(), "grid")
    tree["seeds"] = [seed]
    tree["experiment"] = point.experiment
    return tree


def _run_locally(children: list[tuple], tracking_uri: str, fail_fast: bool) -> list[ChildResult]:
    results = []
    for index, (label, point, seed, run_id) in enumerate(children):
        try:
            results.append(run_child(_child_tree(point, seed), point.source, seed, label, tracking_uri, run_id))
        except KeyboardInterrupt:
            _close_pending(tracking_uri, [c[3] for c in children[index + 1 :]], RunStatus.KILLED)
            raise
        except ChildRunFailed as failure:
            results.append(failure.result)
            if fail_fast:
                _close_pending(tracking_uri, [c[3] for c in children[index + 1 :]], RunStatus.KILLED)
                raise
    return results


def _run_on_ray(children: list[tuple], tracking_uri: str, address: str | None, cpus_per_trial: float) -> list[ChildResult]:
    import ray

    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=not is_quiet(), ignore_reinit_error=True)
    remote_child = ray.remote(num_cpus=cpus_per_trial)(_ray_child)
    quiet = is_quiet()
    refs = [
        remote_child.remote(_child_tree(point, seed), point.source, seed, label, tracking_uri, run_id, quiet)
        for label, point, seed, run_id in children
    ]
    try:
        return list(ray.get(refs))
    except KeyboardInterrupt:
        for ref in refs:
            ray.cancel(ref, force=True)
        _close_pending(tracking_uri, [c[3] for c in children], RunStatus.KILLED)
        raise


def _ray_child(point_tree: dict[str, Any], source: str, seed: int, label: str, tracking_uri: str, run_id: str, quiet: bool) -> ChildResult:
    """A Ray task: failures come back as results so the other trials keep going."""
    set_quiet(quiet)
    try:
        return run_child(point_tree, source, seed, label, tracking_uri, run_id)
    except ChildRunFailed as failure:
        return failure.result


def _close_pending(tracking_uri: str, run_ids: list[str], status: int) -> None:
    """Runs that never started (after a failure or Ctrl-C) must not stay SCHEDULED forever."""
    client = MlflowClient(tracking_uri)
    for run_id in run_ids:
        if client.get_run(run_id).info.status in ("SCHEDULED", "RUNNING"):
            client.set_terminated(run_id, status=RunStatus.to_string(status))


def _log_summary(tracker: Tracker, summary: dict[str, float]) -> None:
    """Log summary values the method did not log itself, so every child has them as metrics."""
    logged = tracker.client.get_run(tracker.run_id).data.metrics
    missing = {key: value for key, value in summary.items() if metric_key(key) not in logged}
    if missing:
        tracker.log_metrics(missing)
    tracker.log_dict(summary, "summary.json")


def _log_results(parent: Tracker, results: list[ChildResult], plan: specs.LaunchPlan) -> None:
    from suite.report import format_table, summarize

    rows = [{"point": r.label, "seed": r.seed, **r.summary} for r in results if not r.error]
    parent.log_dict(
        [{"point": r.label, "seed": r.seed, "run_id": r.run_id, "summary": r.summary, "error": r.error} for r in results], "results.json"
    )
    if rows:
        table = format_table(summarize(rows, ["point"], plan.base.report_metrics))
        parent.log_text(table + "\n", "results.md")


def _without(tree: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: value for key, value in tree.items() if key not in keys}


def _yaml(tree: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(tree, sort_keys=False)


def print_error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
