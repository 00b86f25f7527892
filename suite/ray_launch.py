"""A launch's children as Ray tasks (``suite sweep --ray``): local Ray, or an existing cluster (``--address``).

Each child is a task that opens and closes its own MLflow run wherever Ray places it, with
``--cpus-per-trial`` and ``--gpus-per-trial`` as its Ray resources: a trial waits until a node
has them free. Ray gives a task its GPUs by setting ``CUDA_VISIBLE_DEVICES``, so inside the
trial ``train.device: cuda`` (or ``cuda:0``) is the GPU Ray assigned it; the run records the
node (``suite.ray_node``) and the GPU ids (``suite.ray_gpus``) it got.

A task whose node or worker dies is retried by Ray (``TASK_RETRIES``). The retry must not
leave a second run for the same child: it finds the run the dead attempt opened (same parent,
point and seed) and continues it in place, from its last checkpoint, as ``suite resume``
does; ``suite.ray_nodes`` lists every node that ran an attempt. So each child has exactly one
run, FINISHED once. A retry after the run had already finished (the worker died while sending
the result back) returns what that run logged.
"""

from __future__ import annotations

import json
import signal
import tempfile
import threading
from dataclasses import replace
from typing import Any

from suite import spec as specs
from suite.child_run import child_tree, continue_child, run_child
from suite.launch_types import ChildJob, ChildResult, LaunchSite
from suite.tracking import Tracker, close_open_children, describe_error, find_child_run

TASK_RETRIES = 3
NODE_TAG = "suite.ray_node"
NODES_TAG = "suite.ray_nodes"
GPUS_TAG = "suite.ray_gpus"


def run_on_ray(
    jobs: list[ChildJob], site: LaunchSite, address: str | None, cpus_per_trial: float, gpus_per_trial: float = 0.0
) -> list[ChildResult]:
    """Each child as a Ray task that opens (or, retried, continues) and closes its own run; a lost task is a failed child."""
    ray = import_ray()
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=not site.quiet, ignore_reinit_error=True)
    remote_child = ray.remote(num_cpus=cpus_per_trial, num_gpus=gpus_per_trial, max_retries=TASK_RETRIES)(ray_child)
    refs = [remote_child.remote(job.label, child_tree(job.point, job.seed), job.point.source, job.seed, site) for job in jobs]
    try:
        results = [_result(ref, job) for ref, job in zip(refs, jobs)]
    except KeyboardInterrupt:
        for ref in refs:
            ray.cancel(ref, force=True)
        raise
    if any(result.run_id is None for result in results):
        close_open_children(site.tracking_uri, site.parent_run_id, "FAILED", "its Ray worker was lost")
    return results


def import_ray() -> Any:
    """Ray's first import sets SIGTERM to ``sys.exit``; keep the handler the launch runs under (SIGTERM ends the runs KILLED)."""
    in_main_thread = threading.current_thread() is threading.main_thread()
    handler = signal.getsignal(signal.SIGTERM) if in_main_thread else None
    import ray

    if in_main_thread and handler is not None:
        signal.signal(signal.SIGTERM, handler)
    return ray


def ray_child(label: str, tree: dict[str, Any], source: str, seed: int, site: LaunchSite) -> ChildResult:
    """A Ray task: one child, in a new run, or in the run an earlier attempt of this task opened before its node died."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    placement = {NODE_TAG: node, GPUS_TAG: ",".join(str(gpu) for gpu in ray.get_gpu_ids())}
    job = ChildJob(label, specs.resolve(tree, source), seed)
    earlier = find_child_run(site.tracking_uri, site.parent_run_id, label, seed)
    if earlier is None:
        return run_child(job, replace(site, tags={**site.tags, **placement, NODES_TAG: node}))
    tracker = Tracker(site.tracking_uri, earlier)
    tags = tracker.tags()
    if tracker.status() == "FINISHED":
        return ChildResult(label=label, seed=seed, run_id=earlier, summary=_logged_summary(tracker))
    tracker.reopen()
    attempts = int(tags.get("suite.ray_attempts", "1")) + 1
    tracker.set_tags({**placement, NODES_TAG: f"{tags.get(NODES_TAG, '?')},{node}", "suite.ray_attempts": attempts})
    return continue_child(tracker, job, site)


def _logged_summary(tracker: Tracker) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = tracker.download_artifact("summary.json", tmp)
        return {key: float(value) for key, value in json.loads(path.read_text()).items()} if path else {}


def _result(ref: Any, job: ChildJob) -> ChildResult:
    import ray

    try:
        return ray.get(ref)
    except ray.exceptions.RayError as error:
        return ChildResult(label=job.label, seed=job.seed, run_id=None, error=f"Ray worker lost: {describe_error(error)}")
