"""Tiny continual runs for the continual tests: a synthetic scenario, a private MLflow store, a RunContext.

Runs go through the registry entries and the runner exactly as the launcher calls them
(``MethodEntry.run(ctx)``), logging into a real SQLite MLflow store.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient

from suite import registry
from suite.api import MethodEntry, NoOptions, RunContext, ScenarioEntry
from suite.checkpoints import CheckpointStore
from suite.continual.entries import SLU_SEQ2SEQ
from suite.continual.options import ContinualTrain, SLUModelOptions
from suite.continual.synthetic import build_synthetic_slu
from suite.tracking import Tracker


def suite_methods(family: str = "continual") -> list[str]:
    """The suite's own methods of one family, read from the registry: a new method file is tested with no edit to the tests."""
    return [
        name
        for name, registration in registry.registrations("method").items()
        if registration.distribution == registry.BUILTIN_DISTRIBUTION and registry.get("method", name).family == family
    ]


def synthetic_entry(per_class: tuple[int, int, int] = (16, 2, 6)) -> ScenarioEntry:
    return ScenarioEntry(
        name="synthetic-slu",
        family="continual",
        options=NoOptions,
        build=lambda options, build: build_synthetic_slu(per_class=per_class, seed=build.seed),
    )


@dataclass
class Store:
    """A private SQLite MLflow store with one experiment."""

    uri: str
    client: MlflowClient
    experiment: str
    root: Path

    @classmethod
    def create(cls, root: Path) -> Store:
        uri = f"sqlite:///{root}/m.db"
        client = MlflowClient(uri)
        experiment = client.create_experiment("continual", artifact_location=(root / "artifacts").as_uri())
        return cls(uri, client, experiment, root)

    def new_run(self) -> str:
        return self.client.create_run(self.experiment).info.run_id


def context(
    store: Store,
    method: str | MethodEntry,
    *,
    run_id: str | None = None,
    seed: int = 0,
    per_class: tuple[int, int, int] = (16, 2, 6),
    method_options: dict[str, Any] | None = None,
    resumable: bool = False,
    evaluation: str = "test",
    scenario: ScenarioEntry | None = None,
    **train: Any,
) -> tuple[RunContext, MethodEntry]:
    """A RunContext for ``method`` (a registered name or an entry) in a new run or in ``run_id``."""
    entry = registry.get("method", method) if isinstance(method, str) else method
    options = {"replay": {"size": 12, "batch_size_mem": 8}} if "replay" in entry.options.model_fields else {}
    options.update(method_options or {})
    run_id = run_id or store.new_run()
    run_dir = store.root / f"{run_id}-{len(list(store.root.glob(f'{run_id}*')))}"  # a fresh folder per process, as the launcher gives
    run_dir.mkdir()
    tracker = Tracker(store.uri, run_id)
    train_options = {"epochs": 2, "batch_size": 16, "lr": 3e-3, "num_threads": 1, "echo": False, **train}
    ctx = RunContext(
        seed=seed,
        scenario_entry=scenario or synthetic_entry(per_class),
        scenario_options=NoOptions(),
        model_entry=SLU_SEQ2SEQ,
        model_options=SLUModelOptions(preset="tiny"),
        method_options=entry.options.model_validate(options),
        train_options=ContinualTrain(**train_options),
        tracker=tracker,
        run_dir=run_dir,
        cache_dir=run_dir,
        quiet=True,
        checkpoints=CheckpointStore(tracker, run_dir) if resumable else None,
        evaluation=evaluation,
    )
    return ctx, entry


def run(store: Store, method: str | MethodEntry, **kwargs: Any) -> tuple[dict[str, float], str]:
    ctx, entry = context(store, method, **kwargs)
    return entry.run(ctx), ctx.tracker.run_id


def history(store: Store, run_id: str, key: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in store.client.get_metric_history(run_id, key)]


TOY_METHOD = Path(__file__).parent / "toy_continual_method" / "toy_lr_decay.py"
TOY_ENTRY_POINTS = "[suite.methods]\ntoy-lr-decay = toy_lr_decay:LR_DECAY\n"


def install_toy_method(site: Path) -> Path:
    """Install the one-file continual method as a distribution (module + dist-info with one entry point) in ``site``."""
    import shutil

    shutil.copy(TOY_METHOD, site / TOY_METHOD.name)
    dist_info = site / "suite_toy_continual-0.1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: suite-toy-continual\nVersion: 0.1.0\n")
    (dist_info / "entry_points.txt").write_text(TOY_ENTRY_POINTS)
    return site
