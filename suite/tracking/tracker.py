"""One MLflow run, written through the client with its explicit run id: the ``Tracker`` every method logs through.

Also how a run ends: the status an exception maps to, and the one-line error kept on the run."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.exceptions import MlflowException

from suite.errors import SuiteError
from suite.tracking.keys import _param_text, metric_key, param_key
from suite.tracking.provenance import process_tags
from suite.tracking.store import NOTE_TAG, TrackingError, _quiet_loggers, open_client

ERROR_TAG = "suite.error"


DIGEST_LENGTH = 36  # MLflow refuses longer dataset digests


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

    def log_model(self, model: Any, artifact_path: str = "model", extra_files: Sequence[str | Path] = ()) -> str:
        """Save a torch module as an MLflow 3 logged model of this run; returns its model id.

        The runs table's Models column and the experiment's "Logged models" tab list it, with
        the run's params; ``mlflow.pytorch.load_model("models:/<model_id>")`` and
        ``mlflow.pytorch.load_model("runs:/<run_id>/model")`` (MLflow resolves a run's named
        model) both give it back. Built through the client, as ``mlflow.pytorch.log_model``
        would through the process-global tracking URI and experiment. Requirements are pinned
        to the running torch instead of inferred (inference imports the model in a subprocess,
        seconds per run for nothing), without its local build suffix so a CPU or CUDA build
        both match on load; ``extra_files`` (a tokenizer, say) travel inside the model folder.
        MLflow's notice about pickled models is kept off the terminal: the suite's models are
        its own modules, loaded back only by their owner.
        """
        import mlflow.pytorch
        import torch
        from mlflow.entities import LoggedModelOutput, LoggedModelStatus
        from mlflow.models import Model

        run = self._client.get_run(self.run_id)
        logged = self._client.create_logged_model(
            run.info.experiment_id, name=artifact_path, source_run_id=self.run_id, params=dict(run.data.params)
        )
        try:
            # save_model copies extra files through MLflow's artifact download, progress bar included
            with tempfile.TemporaryDirectory() as tmp, _quiet_loggers(["mlflow.pytorch"], logging.ERROR), _no_artifact_progress_bar():
                local = Path(tmp) / artifact_path
                mlflow.pytorch.save_model(
                    model,
                    str(local),
                    mlflow_model=Model(
                        artifact_path=logged.artifact_location, run_id=self.run_id, model_uuid=logged.model_id, model_id=logged.model_id
                    ),
                    serialization_format="pickle",
                    extra_files=[str(path) for path in extra_files] or None,
                    pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
                )
                self._client.log_model_artifacts(logged.model_id, str(local))
        except BaseException:
            with contextlib.suppress(Exception):
                self._client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
            raise
        self._client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
        self._client.log_outputs(self.run_id, [LoggedModelOutput(logged.model_id, step=0)])
        return logged.model_id

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

    def artifact_location(self, artifact_file: str) -> str:
        """Where an artifact of this run lies: a local path for a local store, else its ``runs:/`` URI."""
        root = self._client.get_run(self.run_id).info.artifact_uri
        if root.startswith("file://"):
            return str(Path(urllib.request.url2pathname(urllib.parse.urlparse(root).path)) / artifact_file)
        if root.startswith("/"):
            return str(Path(root) / artifact_file)
        return f"runs:/{self.run_id}/{artifact_file}"

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

    def artifact_uri(self, artifact_file: str) -> str:
        """Where an artifact of this run lives, for messages that must name the file."""
        return f"{self._client.get_run(self.run_id).info.artifact_uri.rstrip('/')}/{artifact_file}"

    def run_name(self) -> str:
        return self._client.get_run(self.run_id).info.run_name or ""

    def reopen(self) -> None:
        """Put a closed run back to RUNNING in this process (``suite resume``); its old error tag goes."""
        self._client.update_run(self.run_id, status="RUNNING")
        self.set_tags(process_tags())
        if ERROR_TAG in self.tags():
            self._client.delete_tag(self.run_id, ERROR_TAG)

    def end(self, status: str = "FINISHED") -> None:
        self._client.set_terminated(self.run_id, status=status)


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
