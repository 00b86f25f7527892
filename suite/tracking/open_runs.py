"""Runs still marked open: which process holds each, and closing those whose process is gone (or a launch's children)."""

from __future__ import annotations

from dataclasses import dataclass

from mlflow.entities import Run, RunStatus
from mlflow.tracking import MlflowClient

from suite.tracking.provenance import HOST_TAG, PID_TAG, process_state
from suite.tracking.store import _experiment_ids, open_client, sqlite_path
from suite.tracking.tracker import ERROR_TAG, Tracker

OPEN_STATUSES = ("RUNNING", "SCHEDULED")


@dataclass(frozen=True)
class OpenRun:
    """A run the store still marks RUNNING or SCHEDULED, and what became of its process."""

    run_id: str
    experiment: str
    name: str
    kind: str
    status: str
    host: str
    pid: str
    state: str
    start_time: int


def open_runs(tracking_uri: str) -> list[OpenRun]:
    """Every suite run of the store still marked RUNNING or SCHEDULED, oldest first (a store not yet created has none)."""
    db_path = sqlite_path(tracking_uri)
    if db_path is not None and not db_path.exists():
        return []
    client = open_client(tracking_uri)
    ids = _experiment_ids(client)
    found = _search_open(client, ids, "tags.`suite.kind` != ''") if ids else []
    names = {experiment_id: client.get_experiment(experiment_id).name for experiment_id in {run.info.experiment_id for run in found}}
    return [
        OpenRun(
            run_id=run.info.run_id,
            experiment=names[run.info.experiment_id],
            name=run.info.run_name or "",
            kind=run.data.tags.get("suite.kind", ""),
            status=run.info.status,
            host=run.data.tags.get(HOST_TAG, "?"),
            pid=run.data.tags.get(PID_TAG, "?"),
            state=process_state(run.data.tags),
            start_time=run.info.start_time,
        )
        for run in sorted(found, key=lambda run: run.info.start_time)
    ]


def close_stale_runs(tracking_uri: str) -> list[OpenRun]:
    """Mark KILLED the open runs whose process is gone from this host; returns them."""
    stale = [run for run in open_runs(tracking_uri) if run.state == "gone"]
    for run in stale:
        tracker = Tracker(tracking_uri, run.run_id)
        tracker.set_tags({ERROR_TAG: f"process {run.pid} on {run.host} ended without closing the run (killed or crashed)"})
        tracker.end(RunStatus.to_string(RunStatus.KILLED))
    return stale


def close_open_children(tracking_uri: str, parent_run_id: str, status: str = "KILLED", reason: str = "") -> None:
    """Close the children of a launch that are still open (after Ctrl-C, SIGTERM or a lost Ray worker)."""
    client = open_client(tracking_uri)
    parent = client.get_run(parent_run_id)
    for run in _search_open(client, [parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent_run_id}'"):
        if reason:
            client.set_tag(run.info.run_id, ERROR_TAG, reason)
        client.set_terminated(run.info.run_id, status=status)


def _search_open(client: MlflowClient, experiment_ids: list[str], query: str) -> list[Run]:
    """Runs matching ``query`` that are RUNNING or SCHEDULED (MLflow's filter has no IN for status)."""
    runs = []
    for status in OPEN_STATUSES:
        token = None
        while True:
            page = client.search_runs(experiment_ids, f"{query} and attributes.status = '{status}'", max_results=1000, page_token=token)
            runs += list(page)
            token = page.token
            if not token:
                break
    return runs


def find_child_run(tracking_uri: str, parent_run_id: str, label: str, seed: int) -> str | None:
    """The run a launch already has for one child (grid point label and seed), if any: a retried Ray task continues it."""
    client = open_client(tracking_uri)
    parent = client.get_run(parent_run_id)
    point = label.replace("'", "\\'")
    query = f"tags.`mlflow.parentRunId` = '{parent_run_id}' and tags.`suite.point` = '{point}' and tags.`suite.seed` = '{seed}'"
    found = client.search_runs([parent.info.experiment_id], query, max_results=2)
    return found[0].info.run_id if found else None
