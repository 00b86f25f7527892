"""MLflow tracking: one parent run per launch, one child run per seed or sweep point.

The suite talks to MLflow through its own client (``MlflowClient``) with explicit run ids,
so that several runs can be open at once (parent and child) and Ray workers can log into
runs of the driver's launch. This package is the only place that holds a client: everything else goes
through a ``Tracker`` (one run) or the store-level functions it exports. One module per
concern: ``store`` (URI, schema, server probe, experiments), ``tracker`` (a run, how it ends),
``open_runs`` (runs still marked open, stale ones), ``provenance`` (versions, commit, process),
``keys`` (spec keys as MLflow keys).

Every run records the process that runs it (host, pid and the pid's start time), so a later
launch can tell a run whose process was killed (SIGKILL, power cut) from a live one and close
it KILLED instead of leaving it RUNNING forever.
"""

from __future__ import annotations

from suite.tracking.keys import MAX_PARAM_LENGTH, flatten, metric_key, param_key
from suite.tracking.open_runs import OPEN_STATUSES, OpenRun, close_open_children, close_stale_runs, find_child_run, open_runs
from suite.tracking.provenance import (
    HOST_TAG,
    PID_STARTED_TAG,
    PID_TAG,
    TRACKED_PACKAGES,
    git_commit,
    package_versions,
    process_state,
    process_tags,
    provenance_tags,
)
from suite.tracking.store import (
    CLASSIC_EXPERIMENT_KIND,
    CLASSIC_VIEW_QUERY,
    DEFAULT_ARTIFACTS,
    DEFAULT_DB,
    EXPERIMENT_KIND_TAG,
    PROBE_BYTES,
    PROBE_PATH,
    SCHEMA_LOGGERS,
    SERVER_PROBE_TIMEOUT_S,
    TrackingError,
    default_tracking_uri,
    ensure_experiment,
    latest_experiment_id,
    local_artifact_root,
    open_client,
    open_store,
    read_client,
    sqlite_path,
)
from suite.tracking.tracker import DIGEST_LENGTH, ERROR_TAG, NOTE_TAG, Tracker, describe_error, end_status, run_status

__all__ = [
    "CLASSIC_EXPERIMENT_KIND",
    "CLASSIC_VIEW_QUERY",
    "DEFAULT_ARTIFACTS",
    "DEFAULT_DB",
    "DIGEST_LENGTH",
    "ERROR_TAG",
    "EXPERIMENT_KIND_TAG",
    "HOST_TAG",
    "MAX_PARAM_LENGTH",
    "NOTE_TAG",
    "OPEN_STATUSES",
    "PID_STARTED_TAG",
    "PID_TAG",
    "PROBE_BYTES",
    "PROBE_PATH",
    "SCHEMA_LOGGERS",
    "SERVER_PROBE_TIMEOUT_S",
    "TRACKED_PACKAGES",
    "OpenRun",
    "Tracker",
    "TrackingError",
    "close_open_children",
    "close_stale_runs",
    "default_tracking_uri",
    "describe_error",
    "end_status",
    "ensure_experiment",
    "find_child_run",
    "flatten",
    "git_commit",
    "latest_experiment_id",
    "local_artifact_root",
    "metric_key",
    "open_client",
    "open_runs",
    "open_store",
    "package_versions",
    "param_key",
    "process_state",
    "process_tags",
    "provenance_tags",
    "read_client",
    "run_status",
    "sqlite_path",
]
