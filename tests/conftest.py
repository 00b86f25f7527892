"""Shared fixtures: a third-party plugin distribution on the path, and isolated MLflow stores."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import mlflow
import pytest
import torch

from suite import registry
from suite.tracking import open_store

TOY_SOURCE = Path(__file__).parent / "toy_plugin" / "suite_toy"
ENTRY_POINTS = """\
[suite.scenarios]
toy-numbers = suite_toy:NUMBERS
toy-other = suite_toy:OTHER

[suite.models]
toy-linear = suite_toy:LINEAR
toy-broken = suite_toy:NOT_A_PLUGIN

[suite.methods]
toy-fit = suite_toy:FIT
toy-fit-by-model = suite_toy:FIT_BY_MODEL
"""

pytest_plugins = ("slu_fixtures",)

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def toy_distribution(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Install 'suite-toy' as a distribution (package + dist-info) in a folder on sys.path."""
    site = tmp_path_factory.mktemp("site")
    shutil.copytree(TOY_SOURCE, site / "suite_toy")
    dist_info = site / "suite_toy-0.3.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: suite-toy\nVersion: 0.3.1\n")
    (dist_info / "entry_points.txt").write_text(ENTRY_POINTS)
    sys.path.insert(0, str(site))
    registry.clear_cache()
    yield site
    sys.path.remove(str(site))
    registry.clear_cache()


@pytest.fixture
def toy_env(toy_distribution: Path, tracking_uri: str, tmp_path: Path) -> dict[str, str]:
    """Environment for a subprocess that should see the toy distribution and the test's private store."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(toy_distribution), env.get("PYTHONPATH", "")])
    env["MLFLOW_TRACKING_URI"] = tracking_uri
    env["SUITE_CACHE"] = str(tmp_path / "cache")
    return env


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite store with its schema, made once: creating the schema takes seconds, copying it does not."""
    path = tmp_path_factory.mktemp("empty-store") / "mlflow.db"
    open_store(f"sqlite:///{path}")
    return path


@pytest.fixture
def tracking_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_store: Path) -> str:
    """A private SQLite store (a copy of the empty one), also for MLflow's fluent API; the working directory is the test's own folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SUITE_CACHE", str(tmp_path / "cache"))
    shutil.copyfile(empty_store, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    return uri


@pytest.fixture(autouse=True)
def _forget_mlflow_tracking_uri():
    """``mlflow.set_tracking_uri`` is process-global (and writes the environment): no test sees the last one's store."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    mlflow.set_tracking_uri(None)
    if before is not None:
        os.environ["MLFLOW_TRACKING_URI"] = before


@pytest.fixture
def toy_spec(tmp_path: Path) -> Path:
    path = tmp_path / "toy.yaml"
    path.write_text(
        "description: toy regression\n"
        "experiment: toy-exp\n"
        "seeds: [0, 1]\n"
        "scenario: {name: toy-numbers, size: 64}\n"
        "model: {name: toy-linear}\n"
        "method: {name: toy-fit, steps: 4}\n"
        "train: {lr: 0.05}\n"
    )
    return path
