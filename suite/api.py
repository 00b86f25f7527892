"""What a plugin package implements and receives: registry entries, options, run contexts.

Built-ins and third-party packages register the same way: an entry point in one of the
groups ``suite.scenarios``, ``suite.models``, ``suite.methods`` whose value is a
``ScenarioEntry``, ``ModelEntry`` or ``MethodEntry``. Each entry declares a pydantic
``options`` model, so a run spec is validated key by key before anything runs. ("Plugin"
means a package that adds entries; Avalanche's plugins keep their own name.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from suite.checkpoints import CheckpointStore
    from suite.tracking import Tracker

Evaluation = Literal["test", "valid"]


class Options(BaseModel):
    """Base for entry options: unknown keys are errors, values are validated on assignment, floats are finite.

    No option means anything by inf or NaN (``train.lr: .inf`` would only surface later as a NaN
    loss), so they are refused at validation; RecBole's ``[5,inf)`` intervals are strings.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class NoOptions(Options):
    """For entries that take no options besides their name."""


@dataclass(frozen=True)
class BuildContext:
    """What a scenario or model needs besides its own options."""

    seed: int
    cache_dir: Path
    run_dir: Path
    quiet: bool = False


@dataclass(frozen=True)
class ScenarioEntry:
    """Turns data on disk into an Avalanche benchmark or a RecBole dataset description."""

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
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def build_context(self) -> BuildContext:
        return BuildContext(seed=self.seed, cache_dir=self.cache_dir, run_dir=self.run_dir, quiet=self.quiet)

    def build_scenario(self) -> Any:
        """Build the scenario named in the spec with this run's seed."""
        return self.scenario_entry.build(self.scenario_options, self.build_context)

    def build_model(self, *args: Any, **kwargs: Any) -> Any:
        """Build the model named in the spec; family-specific arguments are passed through."""
        return self.model_entry.build(self.model_options, *args, **kwargs)
