"""Paper-style tables: mean ± std over seeds, one row per method or grid point.

Used at the end of ``suite run`` (from the summaries in hand) and by ``suite report``
(from MLflow's own records, so any past experiment can be tabulated again).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import mlflow

from suite.errors import SuiteError
from suite.tracking import metric_key

GROUP_COLUMNS = ("point",)


def summarize(rows: Iterable[dict[str, Any]], group_by: Sequence[str], metrics: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Group rows by ``group_by`` and give each metric's mean, std and count, first-seen order."""
    rows = list(rows)
    metrics = list(metrics) if metrics else _metric_names(rows, group_by)
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[tuple(row.get(key) for key in group_by)].append(row)
    table = []
    for key, members in groups.items():
        entry: dict[str, Any] = dict(zip(group_by, key))
        entry["n"] = len(members)
        for metric in metrics:
            values = [float(m[metric]) for m in members if m.get(metric) is not None and not _is_nan(m[metric])]
            entry[metric] = mean_std(values) if values else None
        table.append(entry)
    return table


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value), as papers report over seeds."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    variance = sum((value - mean) ** 2 for value in values) / (len(values) - 1)
    return mean, math.sqrt(variance)


def format_table(table: list[dict[str, Any]]) -> str:
    """A Markdown table; each metric cell reads ``mean ± std``."""
    if not table:
        return "(no finished runs)"
    columns = list(table[0].keys())
    header = "| " + " | ".join(columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    lines = [header, rule]
    for entry in table:
        cells = [_cell(entry[column]) for column in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def experiment_rows(experiment: str, tracking_uri: str, group_by: Sequence[str], launch: str = "latest") -> list[dict[str, Any]]:
    """One row per finished child run of ``experiment``: its group keys and final metrics.

    ``launch`` picks whose children: ``latest`` (the newest parent run, so a re-launch with
    other settings is not pooled with the old one), ``all``, or a parent run id.
    """
    mlflow.set_tracking_uri(tracking_uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        known = ", ".join(e.name for e in mlflow.search_experiments()) or "none"
        raise SuiteError(f"no experiment named '{experiment}' in {tracking_uri}; known: {known}")
    query = "tags.`suite.kind` = 'child' and attributes.status = 'FINISHED'"
    parent = _parent_of(experiment, launch)
    if parent is not None:
        query += f" and tags.`mlflow.parentRunId` = '{parent}'"
    runs = mlflow.search_runs(
        experiment_names=[experiment], filter_string=query, order_by=["attributes.start_time ASC"], output_format="list"
    )
    rows = []
    for run in runs:
        keys = {key: _group_value(run, key) for key in group_by}
        rows.append({**keys, **run.data.metrics})
    return rows


def report(
    experiment: str,
    tracking_uri: str,
    group_by: Sequence[str] = GROUP_COLUMNS,
    metrics: Sequence[str] | None = None,
    launch: str = "latest",
) -> str:
    """The table of an experiment as ``suite report`` prints it."""
    rows = experiment_rows(experiment, tracking_uri, group_by, launch)
    for name in metrics or ():  # MLflow stores test.hit@10 as test.hit_at_10; show it as asked
        for row in rows:
            if name not in row and metric_key(name) in row:
                row[name] = row[metric_key(name)]
    if not rows:
        raise SuiteError(f"experiment '{experiment}' has no finished child runs to report (launch: {launch})")
    return format_table(summarize(rows, group_by, metrics))


def _parent_of(experiment: str, launch: str) -> str | None:
    """The parent run id that ``launch`` names (None for ``all``)."""
    if launch == "all":
        return None
    parents = mlflow.search_runs(
        experiment_names=[experiment],
        filter_string="tags.`suite.kind` = 'parent'",
        order_by=["attributes.start_time DESC"],
        output_format="list",
    )
    if launch == "latest":
        return parents[0].info.run_id if parents else None
    if launch not in {run.info.run_id for run in parents}:
        raise SuiteError(
            f"--launch {launch}: not a parent run of experiment '{experiment}'; expected 'latest', 'all' or one of "
            + ", ".join(run.info.run_id for run in parents[:5])
        )
    return launch


def _group_value(run: Any, key: str) -> Any:
    if key == "point":
        return run.data.tags.get("suite.point")
    if key in run.data.params:
        return run.data.params[key]
    return run.data.tags.get(key)


def _metric_names(rows: list[dict[str, Any]], group_by: Sequence[str]) -> list[str]:
    names: list[str] = []
    for row in rows:
        for key, value in row.items():
            if key not in group_by and key != "seed" and isinstance(value, (int, float)) and key not in names:
                names.append(key)
    return names


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _cell(value: Any) -> str:
    if isinstance(value, tuple):
        mean, std = value
        digits = 4 if abs(mean) < 1 else 2  # ranking metrics live in [0, 1], accuracies in percent
        return f"{mean:.{digits}f} ± {std:.{digits}f}"
    if value is None:
        return "-"
    return str(value)
