"""The time-incremental protocol: a RecBole sequential dataset cut into periods by time.

The interactions left after the count filters are ordered by time and cut into
``experiences`` periods: by time quantiles (``split_by: quantile``, each period about the same
number of interactions) or by equal time spans (``span``). A user's history runs across
periods. In period k:

- **evaluation targets**: for every user with at least two interactions in period k, the
  user's last interaction of period k, predicted from the user's whole history before it;
- **training samples**: every other interaction of period k that has an earlier interaction
  of its user, as a next-item target with the history before it as input.

A[i][j] is the model after period i scored on period j's evaluation targets (full ranking over
all items, the items already in the input excluded). The arrays here are plain numpy over
interactions sorted by (user, time, file order), shared by the pre-flight (on the file's
tokens) and the run (on RecBole's ids).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import Field

from scenarios.recsys.atomic import read_interactions, recbole_filter
from scenarios.recsys.entries import RecBoleScenario, RecBoleScenarioOptions, build
from suite.api import BuildContext, DataError, ScenarioEntry

FAMILY = "continual-recsys"


class PeriodOptions(RecBoleScenarioOptions):
    """A RecBole dataset (with its filters) cut into ``experiences`` periods by time."""

    experiences: int = Field(5, ge=2, le=100, description="periods the timeline is cut into")
    split_by: Literal["quantile", "span"] = Field("quantile", description="equal interaction counts, or equal time spans")
    min_eval_users: int = Field(10, ge=1, description="fewest evaluation users a period may have (pre-flight)")


@dataclass(frozen=True)
class Timeline:
    """Interactions sorted by (user, time, file order), each with its period; ``start[i]`` is its user's first index."""

    users: np.ndarray
    items: np.ndarray
    times: np.ndarray
    period: np.ndarray
    start: np.ndarray

    @classmethod
    def of(cls, users: np.ndarray, items: np.ndarray, times: np.ndarray, boundaries: np.ndarray) -> Timeline:
        order = np.lexsort((np.arange(len(users)), times, users))
        users, items, times = users[order], items[order], times[order]
        first = np.r_[True, users[1:] != users[:-1]]
        start = np.maximum.accumulate(np.where(first, np.arange(len(users)), 0))
        return cls(users, items, times, np.searchsorted(boundaries, times, side="left"), start)

    def evaluation(self, k: int) -> np.ndarray:
        """Period k's evaluation targets: each user's last interaction in k, for users with two or more there."""
        inside = np.flatnonzero(self.period == k)
        users = self.users[inside]
        last = np.r_[users[1:] != users[:-1], True]
        counts = np.diff(np.r_[0, np.flatnonzero(last) + 1])
        return inside[last][counts >= 2]

    def training(self, k: int) -> np.ndarray:
        """Period k's training samples: its interactions with an earlier one of their user, not evaluation targets."""
        inside = np.flatnonzero((self.period == k) & (np.arange(len(self.users)) > self.start))
        return np.setdiff1d(inside, self.evaluation(k), assume_unique=True)

    def inputs(self, indices: np.ndarray, max_length: int) -> tuple[np.ndarray, np.ndarray]:
        """The input sequences of samples ``indices``: the last ``max_length`` items before each, left-aligned, 0-padded."""
        begin = np.maximum(self.start[indices], indices - max_length)
        lengths = indices - begin
        offsets = begin[:, None] + np.arange(max_length)[None, :]
        valid = np.arange(max_length)[None, :] < lengths[:, None]
        sequences = np.where(valid, self.items[np.minimum(offsets, len(self.items) - 1)], 0)
        return sequences, lengths


def boundaries(times: np.ndarray, experiences: int, split_by: str) -> np.ndarray:
    """The ``experiences - 1`` cut times: a period holds the times in (cut[k-1], cut[k]]."""
    if split_by == "quantile":
        return np.quantile(times, np.arange(1, experiences) / experiences, method="lower")
    low, high = float(times.min()), float(times.max())
    return low + (high - low) * np.arange(1, experiences) / experiences


@dataclass(frozen=True)
class PeriodCounts:
    interactions: int
    training: int
    evaluation: int

    def __str__(self) -> str:
        return f"{self.interactions} interactions, {self.training} training samples, {self.evaluation} evaluation users"


def period_counts(timeline: Timeline, experiences: int) -> list[PeriodCounts]:
    return [
        PeriodCounts(int((timeline.period == k).sum()), len(timeline.training(k)), len(timeline.evaluation(k))) for k in range(experiences)
    ]


@dataclass(frozen=True)
class PeriodScenario:
    """The dataset (RecBole's view of it, a ``SequentialScenario``) and where its periods are cut."""

    base: RecBoleScenario
    boundaries: np.ndarray
    counts: list[PeriodCounts]

    @property
    def dataset(self) -> Any:
        return self.base.dataset

    def config_fragment(self) -> dict[str, Any]:
        return self.base.config_fragment()


def _timeline(options: PeriodOptions) -> tuple[Timeline, np.ndarray]:
    """The filtered interactions of the file, on its own tokens (what RecBole will keep)."""
    from scenarios.recsys.atomic import first_users, locate

    name, folder = locate(options.dataset, options.path)
    fields = options.fields()
    frame = recbole_filter(
        first_users(read_interactions(folder / f"{name}.inter", fields), fields, options.max_users), fields, options.filters()
    )
    times = frame[fields.time].astype(float).to_numpy()
    cuts = boundaries(times, options.experiences, options.split_by)
    users = frame[fields.user].astype(str).to_numpy()
    items = frame[fields.item].astype(str).to_numpy()
    return Timeline.of(users, items, times, cuts), cuts


def check(options: PeriodOptions) -> None:
    """Pre-flight: every period has training samples and at least ``min_eval_users`` evaluation users (counts named)."""
    timeline, _ = _timeline(options)
    counts = period_counts(timeline, options.experiences)
    if any(count.training == 0 or count.evaluation < options.min_eval_users for count in counts):
        listed = "; ".join(f"period {k}: {count}" for k, count in enumerate(counts))
        raise DataError(
            f"{options.path or options.dataset}: {options.experiences} periods by {options.split_by} leave too little data "
            f"(each needs training samples and {options.min_eval_users} evaluation users): {listed}"
        )


def build_periods(options: PeriodOptions, ctx: BuildContext) -> PeriodScenario:
    check(options)
    timeline, cuts = _timeline(options)
    return PeriodScenario(build(options, ctx), cuts, period_counts(timeline, options.experiences))


RECBOLE_PERIODS = ScenarioEntry(
    name="recbole-periods",
    family=FAMILY,
    options=PeriodOptions,
    build=build_periods,
    check=check,
    description="RecBole atomic dataset cut into time periods (quantiles or spans); each period trains, then every period is evaluated",
)
