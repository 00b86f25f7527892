"""A fresh MLflow run to log into, for tests that drive a family's runner without the launcher."""

from __future__ import annotations

from pathlib import Path

from mlflow.tracking import MlflowClient

from suite.tracking import Tracker


def new_run_tracker(uri: str, tmp: Path, experiment: str) -> Tracker:
    """A new run in ``experiment`` (created on first use, its artifacts under ``tmp``) of the store at ``uri``."""
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment, artifact_location=(tmp / "artifacts").as_uri())
    return Tracker(uri, client.create_run(experiment_id).info.run_id)
