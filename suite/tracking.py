"""MLflow tracking: one parent run per launch, one child run per seed or sweep point.

The suite talks to MLflow through its own client (``MlflowClient``) with explicit run ids,
so that several runs can be open at once (parent and child) and Ray workers can log into
runs of the driver's launch. This module is the only one that holds a client: everything
else goes through a ``Tracker`` (one run) or the store-level functions below.

Every run records the process that runs it (host, pid and the pid's start time), so a later
launch can tell a run whose process was killed (SIGKILL, power cut) from a live one and close
it KILLED instead of leaving it RUNNING forever.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import json
import logging
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil
from mlflow.entities import Metric, Param, Run, RunStatus, RunTag, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from suite.errors import SuiteError
from suite.paths import exclusive_lock

DEFAULT_DB = "mlflow.db"
DEFAULT_ARTIFACTS = "mlartifacts"
TRACKED_PACKAGES = ("torch", "torchaudio", "avalanche-lib", "recbole", "mlflow", "ray", "numpy", "cl-suite")
MAX_PARAM_LENGTH = 6000
DIGEST_LENGTH = 36  # MLflow refuses longer dataset digests
SERVER_PROBE_TIMEOUT_S = 5.0

NOTE_TAG = "mlflow.note.content"  # the description MLflow's UI shows for runs and experiments
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"  # MLflow 3's UI: which view an experiment opens on
CLASSIC_EXPERIMENT_KIND = "custom_model_development"  # the runs table, not the GenAI overview
CLASSIC_VIEW_QUERY = "workflowType=machine_learning"  # the same choice as a URL parameter of the UI
HOST_TAG = "suite.host"
PID_TAG = "suite.pid"
PID_STARTED_TAG = "suite.pid_started"
ERROR_TAG = "suite.error"
OPEN_STATUSES = ("RUNNING", "SCHEDULED")
SCHEMA_LOGGERS = ("mlflow.store.db.utils", "alembic")  # "Creating initial MLflow database tables..."

_opened_stores: set[str] = set()


class TrackingError(SuiteError):
    """The tracking store cannot be used (unreachable server, unknown run): nothing was run."""


def default_tracking_uri(workdir: Path | None = None) -> str:
    """The local SQLite store in the working directory, unless MLFLOW_TRACKING_URI says otherwise."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    workdir = Path(workdir or Path.cwd()).resolve()
    return f"sqlite:///{workdir / DEFAULT_DB}"


def local_artifact_root(tracking_uri: str) -> str | None:
    """Artifacts of a local SQLite store go beside the database, never into ./mlruns."""
    db_path = sqlite_path(tracking_uri)
    return (db_path.parent / DEFAULT_ARTIFACTS).resolve().as_uri() if db_path else None


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, else None."""
    return Path(tracking_uri[len("sqlite:///") :]) if tracking_uri.startswith("sqlite:///") else None


def open_store(tracking_uri: str) -> None:
    """Make the store usable, once per process; a store that cannot be used is a TrackingError.

    A new SQLite store gets its schema under a file lock (MLflow's tracking store migrates an
    empty database without one, so two first launches race and one fails), with MLflow's and
    alembic's schema messages kept off the terminal. A server is probed with a short timeout:
    an unreachable one is one line within seconds, not minutes of MLflow's HTTP retries.
    """
    if tracking_uri in _opened_stores:
        return
    if tracking_uri.startswith(("http://", "https://")):
        _probe_server(tracking_uri)
    with _schema_lock(sqlite_path(tracking_uri)), _quiet_loggers(SCHEMA_LOGGERS):
        MlflowClient(tracking_uri)  # MLflow keeps the store (and its engine) per URI for the process
    _opened_stores.add(tracking_uri)


def open_client(tracking_uri: str) -> MlflowClient:
    """A client of the store, opened with ``open_store`` first (for this module's own use)."""
    open_store(tracking_uri)
    return MlflowClient(tracking_uri)


@contextmanager
def _schema_lock(db_path: Path | None) -> Iterator[None]:
    """An exclusive lock per database file, kept outside the user's folders."""
    if db_path is None:
        yield
        return
    digest = hashlib.sha256(str(db_path.resolve()).encode()).hexdigest()[:16]
    with exclusive_lock(Path(tempfile.gettempdir()) / f"suite-store-{digest}.lock"):
        yield


@contextmanager
def _quiet_loggers(names: Sequence[str], level: int = logging.WARNING) -> Iterator[None]:
    """Raise some loggers' level for a moment; the rest of logging is left alone."""
    loggers = [logging.getLogger(name) for name in names]
    before = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(level)
    try:
        yield
    finally:
        for logger, old in zip(loggers, before):
            logger.setLevel(old)


def _probe_server(tracking_uri: str) -> None:
    """Any HTTP answer (even 401/404) means a server is there; no answer is a TrackingError."""
    url = tracking_uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=SERVER_PROBE_TIMEOUT_S):
            return
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise TrackingError(
            f"tracking server {tracking_uri} is unreachable ({reason}; waited at most {SERVER_PROBE_TIMEOUT_S:.0f} s); "
            "check --tracking-uri / MLFLOW_TRACKING_URI"
        ) from None


def ensure_experiment(tracking_uri: str, name: str, description: str = "") -> str:
    """The id of experiment ``name``, created if new (local artifact root, classic runs view).

    The spec's description becomes the experiment's description; two launches creating the
    same experiment at once both get its id.
    """
    client = open_client(tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            experiment_id = client.create_experiment(
                name, artifact_location=local_artifact_root(tracking_uri), tags={EXPERIMENT_KIND_TAG: CLASSIC_EXPERIMENT_KIND}
            )
        except MlflowException as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            experiment_id = client.get_experiment_by_name(name).experiment_id
        tags: dict[str, str] = {}
    else:
        experiment_id, tags = experiment.experiment_id, experiment.tags
    if EXPERIMENT_KIND_TAG not in tags:
        client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, CLASSIC_EXPERIMENT_KIND)
    if description and tags.get(NOTE_TAG) != description:
        client.set_experiment_tag(experiment_id, NOTE_TAG, description)
    return experiment_id


def latest_experiment_id(tracking_uri: str) -> str | None:
    """The experiment of the newest suite launch in the store, for the dashboard's first page."""
    client = open_client(tracking_uri)
    ids = _experiment_ids(client)
    if not ids:
        return None
    runs = client.search_runs(ids, "tags.`suite.kind` = 'parent'", max_results=1, order_by=["attributes.start_time DESC"])
    return runs[0].info.experiment_id if runs else None


def package_versions() -> dict[str, str]:
    versions = {}
    for package in TRACKED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def git_commit(path: Path | None = None) -> str | None:
    """The commit of the suite's source tree (not the user's cwd), or None outside git."""
    path = path or Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def provenance_tags(command_line: str | None = None, source: str | None = None) -> dict[str, str]:
    """Tags that say which code, packages, user and command produced a run, as MLflow's UI reads them.

    ``mlflow.source.name`` is the spec file (the run's source, shown in the Source column),
    ``mlflow.user`` the account that launched it, ``mlflow.source.git.commit`` the suite's commit.
    """
    tags = {
        "suite.command": command_line or " ".join(sys.argv),
        "suite.python": platform.python_version(),
        "mlflow.user": _user(),
        "mlflow.source.type": "LOCAL",
        "mlflow.source.name": source or (sys.argv[0] if sys.argv else "suite"),
    }
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    for package, version in package_versions().items():
        tags[f"suite.version.{package}"] = version
    return tags


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def process_tags() -> dict[str, str]:
    """Which process runs a run: host, pid, and the pid's start time (a reused pid is another process)."""
    me = psutil.Process()
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(me.pid), PID_STARTED_TAG: f"{me.create_time():.2f}"}


def process_state(tags: Mapping[str, str]) -> str:
    """``alive``, ``gone`` (killed or crashed), or ``unknown`` (another host, or no process tags)."""
    if tags.get(HOST_TAG) != socket.gethostname() or not tags.get(PID_TAG, "").isdigit():
        return "unknown"
    try:
        process = psutil.Process(int(tags[PID_TAG]))
        if process.status() == psutil.STATUS_ZOMBIE:
            return "gone"
        started = tags.get(PID_STARTED_TAG)
        if started and abs(process.create_time() - float(started)) > 1.0:
            return "gone"  # the pid was reused by a later process
    except psutil.NoSuchProcess:
        return "gone"
    except (psutil.AccessDenied, ValueError):
        return "unknown"
    return "alive"


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


def find_child_run(tracking_uri: str, parent_run_id: str, label: str, seed: int) -> str | None:
    """The run a launch already has for one child (grid point label and seed), if any: a retried Ray task continues it."""
    client = open_client(tracking_uri)
    parent = client.get_run(parent_run_id)
    point = label.replace("'", "\\'")
    query = f"tags.`mlflow.parentRunId` = '{parent_run_id}' and tags.`suite.point` = '{point}' and tags.`suite.seed` = '{seed}'"
    found = client.search_runs([parent.info.experiment_id], query, max_results=2)
    return found[0].info.run_id if found else None


def _experiment_ids(client: MlflowClient) -> list[str]:
    ids, token = [], None
    while True:
        page = client.search_experiments(view_type=ViewType.ACTIVE_ONLY, max_results=1000, page_token=token)
        ids += [experiment.experiment_id for experiment in page]
        token = page.token
        if not token:
            return ids


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


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mapping to dotted keys: {'a': {'b': 1}} -> {'a.b': 1}."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def metric_key(key: str) -> str:
    """MLflow rejects '@' in metric names: ``test.hit@10`` is logged as ``test.hit_at_10``."""
    return key.replace("@", "_at_")


def param_key(key: str) -> str:
    """MLflow rejects ',' in param names: the grid axis ``method, train.lr`` is logged as ``grid.method/train.lr``."""
    return re.sub(r"\s*,\s*", "/", key)


class Tracker:
    """Logs into one MLflow run (and reads it back). Safe to rebuild in another process from (uri, run_id)."""

    def __init__(self, tracking_uri: str, run_id: str):
        self.tracking_uri = tracking_uri
        self.run_id = run_id
        self._client = open_client(tracking_uri)

    @classmethod
    def create(cls, tracking_uri: str, experiment_id: str, run_name: str, tags: Mapping[str, str]) -> Tracker:
        """Open a new RUNNING run now (its start time), recorded as run by this process."""
        run = open_client(tracking_uri).create_run(experiment_id, run_name=run_name, tags={**tags, **process_tags()})
        return cls(tracking_uri, run.info.run_id)

    @classmethod
    def existing(cls, tracking_uri: str, run_id: str) -> Tracker:
        """A Tracker of a run that must exist: an unknown id is one TrackingError line."""
        tracker = cls(tracking_uri, run_id)
        try:
            tracker.status()
        except MlflowException:
            raise TrackingError(f"no run {run_id} in {tracking_uri}") from None
        return tracker

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        timestamp = int(time.time() * 1000)
        entries = [Metric(metric_key(key), float(value), timestamp, step or 0) for key, value in metrics.items()]
        self._client.log_batch(self.run_id, metrics=entries, synchronous=True)  # MLflow splits it into batches it accepts

    def log_params(self, params: Mapping[str, Any]) -> None:
        entries = [Param(param_key(key), _param_text(value)) for key, value in params.items()]
        self._client.log_batch(self.run_id, params=entries, synchronous=True)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._client.log_batch(self.run_id, tags=[RunTag(key, str(value)) for key, value in tags.items()], synchronous=True)

    def log_dict(self, obj: Any, artifact_file: str) -> None:
        """Save a JSON- or YAML-serializable object as an artifact (format from the suffix)."""
        self._client.log_dict(self.run_id, obj, artifact_file)

    def log_text(self, text: str, artifact_file: str) -> None:
        self._client.log_text(self.run_id, text, artifact_file)

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        self._client.log_figure(self.run_id, figure, artifact_file)

    def log_artifact(self, local_path: str | Path, artifact_path: str | None = None) -> None:
        local_path = Path(local_path)
        if local_path.is_dir():
            self._client.log_artifacts(self.run_id, str(local_path), artifact_path)
        else:
            self._client.log_artifact(self.run_id, str(local_path), artifact_path)

    def log_state_dict(self, state: Mapping[str, Any], name: str, artifact_path: str = "checkpoints") -> None:
        """Save a checkpoint (state dicts, tensors and plain values only) as an artifact.

        Everything saved this way loads back with ``torch.load(path, weights_only=True)``.
        """
        import torch

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            torch.save(dict(state), path)
            self._client.log_artifact(self.run_id, str(path), artifact_path)

    def list_artifacts(self, folder: str | None = None) -> list[str]:
        """Paths of the run's artifact files directly under ``folder`` (the root by default)."""
        return [info.path for info in self._client.list_artifacts(self.run_id, folder) if not info.is_dir]

    def download_artifact(self, artifact_file: str, dst_dir: str | Path) -> Path | None:
        """Fetch one artifact of this run into ``dst_dir``; None when the run has no such file."""
        folder, _, _ = artifact_file.rpartition("/")
        if artifact_file not in self.list_artifacts(folder or None):
            return None
        Path(dst_dir).mkdir(parents=True, exist_ok=True)
        with _no_artifact_progress_bar():
            return Path(self._client.download_artifacts(self.run_id, artifact_file, str(dst_dir)))

    def log_model(self, model: Any, artifact_path: str = "model", extra_files: Sequence[str | Path] = ()) -> None:
        """Save a torch module in MLflow's pytorch flavor: ``mlflow.pytorch.load_model("runs:/<id>/model")`` gives it back.

        Requirements are pinned to the running torch instead of inferred (inference imports the
        model in a subprocess, seconds per run for nothing), without its local build suffix so a
        CPU or CUDA build both match on load; ``extra_files`` (a tokenizer, say) travel inside
        the model folder. MLflow's notice about pickled models is kept off the terminal: the
        suite's models are its own modules, loaded back only by their owner.
        """
        import mlflow.pytorch
        import torch

        # save_model copies extra files through MLflow's artifact download, progress bar included
        with tempfile.TemporaryDirectory() as tmp, _quiet_loggers(["mlflow.pytorch"], logging.ERROR), _no_artifact_progress_bar():
            local = Path(tmp) / artifact_path
            mlflow.pytorch.save_model(
                model,
                str(local),
                serialization_format="pickle",
                extra_files=[str(path) for path in extra_files] or None,
                pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
            )
            self._client.log_artifacts(self.run_id, str(local), artifact_path)

    def log_dataset(self, name: str, digest: str, source: str, context: str = "train", profile: Mapping[str, Any] | None = None) -> None:
        """Record the data a run used as an MLflow dataset input (the runs table's Dataset column)."""
        from mlflow.entities import Dataset, DatasetInput, InputTag

        dataset = Dataset(
            name=name,
            digest=digest[:DIGEST_LENGTH],
            source_type="local",
            source=json.dumps({"uri": str(source)}),
            profile=json.dumps(dict(profile)) if profile else None,
        )
        self._client.log_inputs(self.run_id, [DatasetInput(dataset, tags=[InputTag("mlflow.data.context", context)])])

    def set_description(self, text: str) -> None:
        """The run's description as MLflow's UI shows it (the ``mlflow.note.content`` tag)."""
        self.set_tags({NOTE_TAG: text})

    def metric_history(self, key: str) -> list[tuple[int, float]]:
        """``(step, value)`` of a metric, by step; the last value logged at a step wins (a resumed run may log a step twice)."""
        history = sorted(self._client.get_metric_history(self.run_id, metric_key(key)), key=lambda m: (m.timestamp, m.step))
        by_step = {metric.step: metric.value for metric in history}
        return sorted(by_step.items())

    def metrics(self) -> dict[str, float]:
        """The latest value of every metric, under the names MLflow stores (``@`` as ``_at_``)."""
        return dict(self._client.get_run(self.run_id).data.metrics)

    def params(self) -> dict[str, str]:
        return dict(self._client.get_run(self.run_id).data.params)

    def tags(self) -> dict[str, str]:
        return dict(self._client.get_run(self.run_id).data.tags)

    def status(self) -> str:
        return self._client.get_run(self.run_id).info.status

    def reopen(self) -> None:
        """Put a closed run back to RUNNING in this process (``suite resume``); its old error tag goes."""
        self._client.update_run(self.run_id, status="RUNNING")
        self.set_tags(process_tags())
        if ERROR_TAG in self.tags():
            self._client.delete_tag(self.run_id, ERROR_TAG)

    def end(self, status: str = "FINISHED") -> None:
        self._client.set_terminated(self.run_id, status=status)


def _param_text(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (list, dict, tuple)) else str(value)
    return text if len(text) <= MAX_PARAM_LENGTH else text[: MAX_PARAM_LENGTH - 3] + "..."


@contextmanager
def _no_artifact_progress_bar() -> Iterator[None]:
    """MLflow draws a progress bar per download unless told otherwise; resume loads are silent."""
    name = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(name)
    os.environ[name] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def end_status(error: BaseException | None) -> str:
    """FINISHED, KILLED for Ctrl-C or SIGTERM, FAILED for anything else raised."""
    if error is None:
        return RunStatus.to_string(RunStatus.FINISHED)
    if isinstance(error, KeyboardInterrupt):
        return RunStatus.to_string(RunStatus.KILLED)
    return RunStatus.to_string(RunStatus.FAILED)


def describe_error(error: BaseException) -> str:
    """One line for the run's error tag and the terminal."""
    if isinstance(error, KeyboardInterrupt):
        return str(error) or "interrupted (Ctrl-C)"
    if isinstance(error, SuiteError):
        return str(error).splitlines()[0] if str(error) else type(error).__name__
    text = f"{type(error).__name__}: {error}"
    return text.splitlines()[0]


@contextmanager
def run_status(tracker: Tracker) -> Iterator[Tracker]:
    """End the run FINISHED, FAILED (error kept as a tag) or KILLED (Ctrl-C, SIGTERM); re-raise."""
    try:
        yield tracker
    except BaseException as error:
        with contextlib.suppress(Exception):
            tracker.set_tags({ERROR_TAG: describe_error(error)[:5000]})
        tracker.end(end_status(error))
        raise
    else:
        tracker.end(end_status(None))
