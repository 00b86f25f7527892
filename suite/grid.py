"""Grid axes of a run spec: the cartesian product of the axes, and the label of each point.

An axis over one dotted path (``method.replay.size: [100, 200]``) or over several, named as
pytest's ``parametrize`` names them (``"method, train.lr": [[{name: replay}, 0.001], ...]``),
which sets them together. A point's label says what tells it apart from the others
(``method=replay replay.size=0.02``), so a table row reads as the setting it stands for.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, TypeVar

from suite.errors import SpecError
from suite.tracking import flatten

Point = TypeVar("Point")


def axis_paths(axis: str) -> list[str]:
    """The dotted paths an axis sets: one, or several joined by commas (``method, train.lr``), as pytest's parametrize names them."""
    return [path.strip() for path in axis.split(",")]


def grid_points(grid: dict[str, list[Any]], source: str) -> list[tuple[str, list[tuple[str, Any]]]]:
    """The cartesian product of the grid axes, each point a label and the (dotted path, value) pairs it sets.

    An axis over several paths (``"method, train.lr": [[{name: replay}, 0.001], ...]``) sets them
    together, so each method of a comparison keeps the training settings tuned for it.
    """
    if not grid:
        return []
    axes = [(axis_paths(axis), _axis_rows(axis, values, source)) for axis, values in grid.items()]
    labels = [_row_labels(paths, rows) for paths, rows in axes]
    points = []
    for indices in itertools.product(*(range(len(rows)) for _, rows in axes)):
        overrides = [(path, value) for (paths, rows), index in zip(axes, indices) for path, value in zip(paths, rows[index])]
        label = " ".join(axis_labels[index] for axis_labels, index in zip(labels, indices))
        points.append((label, overrides))
    return points


def _axis_rows(axis: str, values: list[Any], source: str) -> list[list[Any]]:
    """Each value of an axis as one value per path; a several-path axis takes lists of that length."""
    paths = axis_paths(axis)
    if len(paths) == 1:
        return [[value] for value in values]
    for number, value in enumerate(values, start=1):
        if not isinstance(value, list) or len(value) != len(paths):
            raise SpecError(
                f"{source}: grid axis '{axis}': value {number} must be a list of {len(paths)} values, one per path; got {value!r}"
            )
    return values


def _row_labels(paths: list[str], rows: list[list[Any]]) -> list[str]:
    """One label per row: the first path's label when it tells the rows apart (the other paths ride
    along with it, e.g. each method's own lr), else every path's label joined."""
    columns = [_axis_labels(path, [row[column] for row in rows]) for column, path in enumerate(paths)]
    if len(set(columns[0])) == len(rows):
        return columns[0]
    return [" ".join(parts) for parts in zip(*columns)]


def _axis_labels(path: str, values: list[Any]) -> list[str]:
    """One label per value of an axis: ``path=value``, or for a whole section ``path=<name>`` plus the
    settings that tell it apart from the other values of that name (``method=replay replay.size=0.02``)."""
    if not all(isinstance(value, dict) and "name" in value for value in values):
        return [f"{path}={value}" for value in values]
    flat = [flatten(value) for value in values]
    labels = []
    for own in flat:
        siblings = [other for other in flat if other["name"] == own["name"] and other is not own]
        differing = [key for key in own if key != "name" and any(other.get(key) != own[key] for other in siblings)]
        labels.append(" ".join([f"{path}={own['name']}", *(f"{key}={own[key]}" for key in differing)]))
    return labels


def select_points(points: list[tuple[str, Point]], only: Sequence[str], skip: Sequence[str], source: str) -> list[tuple[str, Point]]:
    """The points named by ``--only`` (all when none is), less those named by ``--skip``, in grid order.

    A name is a point's label as ``suite show`` and ``suite report`` print it; one that is no
    point's label, or a selection that leaves nothing to run, is an error naming the labels.
    """
    labels = [label for label, _ in points]
    for option, names in (("--only", only), ("--skip", skip)):
        unknown = [name for name in names if name not in labels]
        if unknown:
            raise SpecError(f"{source}: {option} '{unknown[0]}' is not a grid point; points: {', '.join(labels)}")
    kept = [(label, point) for label, point in points if (not only or label in only) and label not in skip]
    if not kept:
        raise SpecError(f"{source}: --only and --skip leave no grid point to run; points: {', '.join(labels)}")
    return kept
