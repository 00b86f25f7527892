"""MLflow tracking: one parent run per launch, one child run per seed or sweep point.

The suite talks to MLflow through its own client (``MlflowClient``) with explicit run ids,
so that several runs can be open at once (parent and child) and Ray workers can log into
a run created by the driver.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.tracking import MlflowClient

DEFAULT_DB = "mlflow.db"
DEFAULT_ARTIFACTS = "mlartifacts"
TRACKED_PACKAGES = ("torch", "torchaudio", "avalanche-lib", "recbole", "mlflow", "ray", "numpy", "cl-suite")
MAX_PARAM_LENGTH = 6000
BATCH_LIMIT = 100
DIGEST_LENGTH = 36  # MLflow refuses longer dataset digests


def default_tracking_uri(workdir: Path | None = None) -> str:
    """The local SQLite store in the working directory, unless MLFLOW_TRACKING_URI says otherwise."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    workdir = Path(workdir or Path.cwd()).resolve()
    return f"sqlite:///{workdir / DEFAULT_DB}"


def local_artifact_root(tracking_uri: str) -> str | None:
    """Artifacts of a local SQLite store go beside the database, never into ./mlruns."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    db_path = Path(tracking_uri[len("sqlite:///") :])
    return (db_path.parent / DEFAULT_ARTIFACTS).resolve().as_uri()


def get_or_create_experiment(client: MlflowClient, name: str, tracking_uri: str) -> str:
    """The experiment id for ``name``, created (with a local artifact root when local) if new."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    return client.create_experiment(name, artifact_location=local_artifact_root(tracking_uri))


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


def provenance_tags(command_line: str | None = None) -> dict[str, str]:
    """Tags that say which code, packages, host and command produced a run."""
    tags = {
        "suite.command": command_line or " ".join(sys.argv),
        "suite.host": socket.gethostname(),
        "suite.python": platform.python_version(),
    }
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    for package, version in package_versions().items():
        tags[f"suite.version.{package}"] = version
    return tags


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


class Tracker:
    """Logs into one MLflow run. Safe to rebuild in another process from (uri, run_id)."""

    def __init__(self, tracking_uri: str, run_id: str):
        self.tracking_uri = tracking_uri
        self.run_id = run_id
        self.client = MlflowClient(tracking_uri)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        timestamp = int(time.time() * 1000)
        entries = [Metric(metric_key(key), float(value), timestamp, step or 0) for key, value in metrics.items()]
        for start in range(0, len(entries), BATCH_LIMIT):
            self.client.log_batch(self.run_id, metrics=entries[start : start + BATCH_LIMIT], synchronous=True)

    def log_params(self, params: Mapping[str, Any]) -> None:
        entries = [Param(key, _param_text(value)) for key, value in params.items()]
        for start in range(0, len(entries), BATCH_LIMIT):
            self.client.log_batch(self.run_id, params=entries[start : start + BATCH_LIMIT], synchronous=True)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        entries = [RunTag(key, str(value)) for key, value in tags.items()]
        for start in range(0, len(entries), BATCH_LIMIT):
            self.client.log_batch(self.run_id, tags=entries[start : start + BATCH_LIMIT], synchronous=True)

    def log_dict(self, obj: Any, artifact_file: str) -> None:
        """Save a JSON- or YAML-serializable object as an artifact (format from the suffix)."""
        self.client.log_dict(self.run_id, obj, artifact_file)

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        self.client.log_figure(self.run_id, figure, artifact_file)

    def log_artifact(self, local_path: str | Path, artifact_path: str | None = None) -> None:
        local_path = Path(local_path)
        if local_path.is_dir():
            self.client.log_artifacts(self.run_id, str(local_path), artifact_path)
        else:
            self.client.log_artifact(self.run_id, str(local_path), artifact_path)

    def log_state_dict(self, state: Mapping[str, Any], name: str, artifact_path: str = "checkpoints") -> None:
        """Save a checkpoint (state dicts, tensors and plain values only) as an artifact.

        Everything saved this way loads back with ``torch.load(path, weights_only=True)``.
        """
        import torch

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            torch.save(dict(state), path)
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def download_artifact(self, artifact_file: str, dst_dir: str | Path) -> Path | None:
        """Fetch one artifact of this run into ``dst_dir``; None when the run has no such file."""
        folder, _, name = artifact_file.rpartition("/")
        listed = {Path(info.path).name for info in self.client.list_artifacts(self.run_id, folder or None) if not info.is_dir}
        if name not in listed:
            return None
        Path(dst_dir).mkdir(parents=True, exist_ok=True)
        return Path(self.client.download_artifacts(self.run_id, artifact_file, str(dst_dir)))

    def log_model(self, model: Any, artifact_path: str = "model", extra_files: Sequence[str | Path] = ()) -> None:
        """Save a torch module in MLflow's pytorch flavor: ``mlflow.pytorch.load_model("runs:/<id>/model")`` gives it back.

        Requirements are pinned to the running torch instead of inferred (inference imports the
        model in a subprocess, seconds per run for nothing); ``extra_files`` (a tokenizer, say)
        travel inside the model folder.
        """
        import mlflow.pytorch
        import torch

        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / artifact_path
            mlflow.pytorch.save_model(
                model,
                str(local),
                serialization_format="pickle",
                extra_files=[str(path) for path in extra_files] or None,
                pip_requirements=[f"torch=={torch.__version__}"],
            )
            self.client.log_artifacts(self.run_id, str(local), artifact_path)

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
        self.client.log_inputs(self.run_id, [DatasetInput(dataset, tags=[InputTag("mlflow.data.context", context)])])

    def set_description(self, text: str) -> None:
        """The run's description as MLflow's UI shows it (the ``mlflow.note.content`` tag)."""
        self.set_tags({"mlflow.note.content": text})

    def end(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status=status)


def _param_text(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (list, dict, tuple)) else str(value)
    return text if len(text) <= MAX_PARAM_LENGTH else text[: MAX_PARAM_LENGTH - 3] + "..."


@contextmanager
def run_status(tracker: Tracker) -> Iterator[Tracker]:
    """End the run FINISHED, FAILED (error kept as a tag) or KILLED (Ctrl-C); re-raise."""
    try:
        yield tracker
    except KeyboardInterrupt:
        tracker.set_tags({"suite.error": "interrupted (KeyboardInterrupt)"})
        tracker.end(RunStatus.to_string(RunStatus.KILLED))
        raise
    except BaseException as error:
        tracker.set_tags({"suite.error": f"{type(error).__name__}: {error}"[:5000]})
        tracker.end(RunStatus.to_string(RunStatus.FAILED))
        raise
    else:
        tracker.end(RunStatus.to_string(RunStatus.FINISHED))
