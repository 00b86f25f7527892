"""The public API: everything a plugin package implements, receives and may raise, in one module.

Built-ins and third-party packages register the same way: an entry point in one of the
groups ``suite.scenarios``, ``suite.models``, ``suite.methods`` whose value is a
``ScenarioEntry``, ``ModelEntry`` or ``MethodEntry``. Each entry declares a pydantic
``options`` model, so a run spec is validated key by key before anything runs. ("Plugin"
means a package that adds entries; Avalanche's plugins keep their own name.)

What a scenario's ``build()`` returns is declared per family (``FAMILIES``) in
``suite.contracts`` and re-exported here: plain data (``SpeechCorpus``, ``InteractionTable``)
from which the suite makes the rest, or a finished scenario (``ContinualScenario``,
``SequentialScenario``). A ``check`` or ``build`` reports bad input by raising ``SpecError``
(the spec) or ``DataError`` (the data): one line, exit 2. Everything named in ``__all__`` is
stable within a minor version; anything else in the suite may change (docs/plugins.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from suite.contracts import (
    FAMILIES,
    ContinualScenario,
    FeatureOptions,
    InteractionProtocolOptions,
    InteractionTable,
    SequentialScenario,
    SpeechCorpus,
    SpeechScenarioOptions,
    SpeechUtterance,
    Tokenizer,
)
from suite.errors import DataError, SpecError, SuiteError
from suite.options import NoOptions, Options

if TYPE_CHECKING:
    from suite.checkpoints import CheckpointStore
    from suite.tracking import Tracker

__all__ = [
    "FAMILIES",
    "BuildContext",
    "ContinualScenario",
    "DataError",
    "Evaluation",
    "FeatureOptions",
    "InteractionProtocolOptions",
    "InteractionTable",
    "MethodEntry",
    "ModelEntry",
    "NoOptions",
    "Options",
    "RunContext",
    "ScenarioEntry",
    "SequentialScenario",
    "SpecError",
    "SpeechCorpus",
    "SpeechScenarioOptions",
    "SpeechUtterance",
    "SuiteError",
    "Tokenizer",
]

Evaluation = Literal["test", "valid"]


@dataclass(frozen=True)
class BuildContext:
    """What a scenario or model needs besides its own options."""

    seed: int
    cache_dir: Path
    run_dir: Path
    quiet: bool = False


@dataclass(frozen=True)
class ScenarioEntry:
    """Turns data into a scenario of its ``family`` (a key of ``FAMILIES``).

    ``build(options, BuildContext)`` returns what ``suite.contracts`` declares for the family:
    a ``SpeechCorpus`` or ``ContinualScenario`` (continual), an ``InteractionTable`` or
    ``SequentialScenario`` (sequential). The suite checks the result right after building it.
    """

    name: str
    family: str
    options: type[Options]
    build: Callable[[Any, BuildContext], Any]
    description: str = ""
    check: Callable[[Any], None] | None = None
    """Optional pre-flight check of the options (paths, layout, class counts): raise a SuiteError
    subclass (DataError, SpecError) and the launch stops with exit 2 before any MLflow run exists."""


@dataclass(frozen=True)
class ModelEntry:
    """Builds the network (or, for RecBole, names the model class) from its options."""

    name: str
    family: str
    options: type[Options]
    build: Callable[..., Any]
    description: str = ""


@dataclass(frozen=True)
class MethodEntry:
    """Trains and evaluates for one seed; ``train_options`` validates the spec's ``train`` section."""

    name: str
    family: str
    options: type[Options]
    train_options: type[Options]
    run: Callable[[RunContext], dict[str, float]]
    description: str = ""
    check: Callable[[Any], None] | None = None
    """Optional pre-flight check of a resolved grid point (``suite.spec.ResolvedSpec``), e.g. that the
    model fits this method: raise a SpecError and the launch stops with exit 2 before any MLflow run."""
    curve_metric: str | None = None
    """A metric the method logs once per stage (integer steps 0, 1, ...): the launch's parent run plots
    it after the children finish, one line per grid point, mean and std band over seeds."""
    names_runs_after_model: bool = False
    """Name child runs after the model (``sasrec seed=0``): for trainers that serve many models."""
    model_family: str | None = None
    """The family of the models the method trains, when it is not the method's own (continual
    recommendation trains the sequential family's recommenders)."""


@dataclass
class RunContext:
    """Everything one child run (one seed, one sweep point) needs; handed to ``MethodEntry.run``."""

    seed: int
    scenario_entry: ScenarioEntry
    scenario_options: Any
    model_entry: ModelEntry
    model_options: Any
    method_options: Any
    train_options: Any
    tracker: Tracker
    run_dir: Path
    cache_dir: Path
    quiet: bool = False
    """No progress bars (``suite.progress.shows_progress(ctx.quiet)``); carried here so Ray workers get it too."""
    checkpoints: CheckpointStore | None = None
    """Where the method saves its resume state (``save``) and finds it again after a kill (``load``)."""
    evaluation: Evaluation = "test"
    """``valid`` while tuning: the method must not read test data and reports ``valid.*`` metrics."""

    @property
    def build_context(self) -> BuildContext:
        return BuildContext(seed=self.seed, cache_dir=self.cache_dir, run_dir=self.run_dir, quiet=self.quiet)

    def build_scenario(self) -> Any:
        """Build the scenario named in the spec with this run's seed."""
        return self.scenario_entry.build(self.scenario_options, self.build_context)

    def build_model(self, *args: Any, **kwargs: Any) -> Any:
        """Build the model named in the spec; family-specific arguments are passed through."""
        return self.model_entry.build(self.model_options, *args, **kwargs)
