"""Where runs are stored: the tracking URI, the store opened (schema made once, under a lock), a server probed, experiments."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from mlflow.entities import ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from suite.errors import SuiteError
from suite.paths import exclusive_lock

NOTE_TAG = "mlflow.note.content"  # the description MLflow's UI shows for runs and experiments
DEFAULT_DB = "mlflow.db"


DEFAULT_ARTIFACTS = "mlartifacts"


SERVER_PROBE_TIMEOUT_S = 5.0


PROBE_PATH = "/api/2.0/mlflow/experiments/get-by-name?experiment_name=Default"  # GET, answered by every MLflow server


PROBE_BYTES = 1 << 16


EXPERIMENT_KIND_TAG = "mlflow.experimentKind"  # MLflow 3's UI: which view an experiment opens on


CLASSIC_EXPERIMENT_KIND = "custom_model_development"  # the runs table, not the GenAI overview


CLASSIC_VIEW_QUERY = "workflowType=machine_learning"  # the same choice as a URL parameter of the UI


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


def open_store(tracking_uri: str, must_exist: bool = False) -> None:
    """Make the store usable, once per process; a store that cannot be used is a TrackingError.

    A new SQLite store gets its schema under a file lock (MLflow's tracking store migrates an
    empty database without one, so two first launches race and one fails), with MLflow's and
    alembic's schema messages kept off the terminal; its folder must exist (MLflow would create
    any path silently), and with ``must_exist`` (commands that only read) so must the database.
    A server is probed with a short timeout: an unreachable one, or one that is not MLflow, is
    one line within seconds, not minutes of MLflow's HTTP retries. A URI MLflow cannot use at
    all (``foo://bar``) is one line too.
    """
    if tracking_uri in _opened_stores:
        return
    db_path = sqlite_path(tracking_uri)
    if db_path is not None:
        _check_sqlite_path(tracking_uri, db_path, must_exist)
    if tracking_uri.startswith(("http://", "https://")):
        _probe_server(tracking_uri)
    with _schema_lock(db_path), _quiet_loggers(SCHEMA_LOGGERS):
        try:
            MlflowClient(tracking_uri)  # MLflow keeps the store (and its engine) per URI for the process
        except MlflowException as error:
            reason = " ".join(str(error).split())[:300]
            raise TrackingError(f"tracking URI {tracking_uri}: MLflow cannot use it as a tracking store ({reason})") from None
    _opened_stores.add(tracking_uri)


def _check_sqlite_path(tracking_uri: str, db_path: Path, must_exist: bool) -> None:
    """The folder of a SQLite store must exist; with ``must_exist``, the database file too."""
    if must_exist and not db_path.is_file():
        raise TrackingError(f"no MLflow store at {db_path} (from {tracking_uri}); run something first, or check --tracking-uri")
    if not db_path.parent.is_dir():
        raise TrackingError(
            f"tracking store {tracking_uri}: folder {db_path.parent} does not exist; create it first or check --tracking-uri"
        )


def open_client(tracking_uri: str) -> MlflowClient:
    """A client of the store, opened with ``open_store`` first (for this package's own writes)."""
    open_store(tracking_uri)
    return MlflowClient(tracking_uri)


def read_client(tracking_uri: str) -> MlflowClient:
    """A client for reading a store that exists (reports, exports, notebooks): reading never creates one."""
    open_store(tracking_uri, must_exist=True)
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
    """The server must answer MLflow's REST API (JSON); no answer, or another kind of server, is a TrackingError.

    A 401 or 403 is accepted: a server with authentication gets its credentials from MLflow's
    own client (``MLFLOW_TRACKING_USERNAME``...), not from this probe.
    """
    url = tracking_uri.rstrip("/") + PROBE_PATH
    try:
        with urllib.request.urlopen(url, timeout=SERVER_PROBE_TIMEOUT_S) as response:
            body = response.read(PROBE_BYTES)
    except urllib.error.HTTPError as error:
        if error.code in (401, 403):
            return
        body = error.read(PROBE_BYTES)
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise TrackingError(
            f"tracking server {tracking_uri} is unreachable ({reason}; waited at most {SERVER_PROBE_TIMEOUT_S:.0f} s); "
            "check --tracking-uri / MLFLOW_TRACKING_URI"
        ) from None
    if not _mlflow_answer(body):
        raise TrackingError(
            f"tracking server {tracking_uri} answers HTTP but not as an MLflow tracking server (no MLflow JSON from {PROBE_PATH}); "
            "check --tracking-uri / MLFLOW_TRACKING_URI"
        )


def _mlflow_answer(body: bytes) -> bool:
    """MLflow's REST API answers a JSON object: the experiment, or an ``error_code``."""
    try:
        answer = json.loads(body)
    except ValueError:
        return False
    return isinstance(answer, dict) and ("experiment" in answer or "error_code" in answer)


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


def _experiment_ids(client: MlflowClient) -> list[str]:
    ids, token = [], None
    while True:
        page = client.search_experiments(view_type=ViewType.ACTIVE_ONLY, max_results=1000, page_token=token)
        ids += [experiment.experiment_id for experiment in page]
        token = page.token
        if not token:
            return ids
