"""What a launch passes around: the children to run, where they run, and what they end with.

Plain data (a Ray task or a spawned process takes them as they are), apart from the launcher
that makes them so that the modules reading results (``report``, ``results``) and running
children (``local_pool``, ``ray_launch``) do not import the launcher back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from suite import spec as specs
from suite.api import Evaluation

RESUMABLE = ("KILLED", "FAILED")


@dataclass
class ChildResult:
    """What one child run ended with (``run_id`` is None only when a Ray worker died before opening it)."""

    label: str
    seed: int
    run_id: str | None
    summary: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    traceback: str | None = field(default=None, repr=False)
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    """The method's ``curve_metric`` history, ``{metric: [(step, value), ...]}``, read after the children finish."""


@dataclass
class LaunchResult:
    experiment: str
    experiment_id: str
    parent_run_id: str
    children: list[ChildResult]
    table: str = ""
    """The results table logged on the parent (results.md), for the terminal too."""

    @property
    def failed(self) -> list[ChildResult]:
        return [child for child in self.children if child.error]


class ChildRunsFailed(Exception):
    """Some child runs ended FAILED (exit 1); the runs are closed, this carries the one-line reason."""

    def __init__(self, failed: list[ChildResult], total: int):
        super().__init__(failed[0].error)
        self.failed = failed
        self.total = total

    def describe(self) -> str:
        """One line: which run failed (and how many did), where to find it, why."""
        first = self.failed[0]
        where = f" (MLflow run {first.run_id})" if first.run_id else ""
        line = f"run '{first.label} seed={first.seed}'{where} failed: {first.error}"
        return f"{len(self.failed)} of {self.total} runs failed; first: {line}" if self.total > 1 else line


@dataclass(frozen=True)
class ChildJob:
    """One child to run: a grid point, resolved once, and one of its seeds."""

    label: str
    point: specs.ResolvedSpec
    seed: int


@dataclass(frozen=True)
class LaunchSite:
    """Where and how the children of one launch run: plain data, so a Ray task can take it."""

    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    tags: dict[str, str]
    quiet: bool = False
    evaluation: Evaluation = "test"
