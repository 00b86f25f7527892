"""Paper-style tables: mean ± std over seeds, one row per grid point, and a paired view against a baseline.

Built on the DataFrame of ``suite.results`` (one row per child run), so ``suite report``
(from MLflow's records, any past launch) and the launch itself (``log_launch_results``,
from the results in hand) print the same table. Tables are rendered by pandas
(``to_markdown``, ``to_csv``, ``to_latex``); statistics come from pandas and scipy.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from suite.errors import SpecError, SuiteError
from suite.results import (
    children_points,
    frame_from_children,
    param_value,
    read_launches,
    resolve_metric,
)
from suite.results_table import FORMATS, ResultsTable, results_table
from suite.tracking import metric_key, read_client

if TYPE_CHECKING:
    from mlflow.entities import Run

    from suite.launch_types import ChildResult
    from suite.spec import LaunchPlan
    from suite.tracking import Tracker

STAGE_NAMES = {"continual": "experience", "sequential": "epoch"}
"""What one step of a method's curve metric is, by family, for the launch figure's x axis."""


def choose_metrics(frame: pd.DataFrame, requested: Sequence[str] | None, spec_metrics: Sequence[str] | None) -> tuple[list[str], list[str]]:
    """The metric columns to show, and notes on spec metrics no run logged.

    Asked-for metrics must exist in some spelling (``resolve_metric``: ``NDCG@10`` finds
    ``test.ndcg_at_10``; an unknown one is an error naming the known ones). The spec's
    ``report.metrics`` are the default, in its order; a validation launch shows ``valid.<name>``
    for a spec's ``<name>``. Without either, every metric the runs logged. Columns carry the one
    name the dashboard shows (``test.ndcg_at_10``).
    """
    known = [metric for metric in frame.attrs.get("metrics", []) if frame[metric].notna().any()]
    if requested:
        chosen = []
        for metric in requested:
            found = resolve_metric(metric, known)
            if found is None:
                raise SpecError(f"unknown metric '{metric}'; the runs logged: {', '.join(known) or 'no metrics'}")
            chosen.append(found)
        return list(dict.fromkeys(chosen)), []
    if not spec_metrics:
        return known, []
    chosen, notes = [], []
    for metric in spec_metrics:
        found = resolve_metric(metric, known) or resolve_metric(f"valid.{metric}", known)
        if found and found not in chosen:
            chosen.append(found)
        elif not found:
            notes.append(f"report.metrics names '{metric}', which no run logged")
    return (chosen, notes) if chosen else (known, notes)


def bullets(notes: Sequence[str]) -> str:
    """Notes as a Markdown list, so they stay separate lines when the table is pasted or rendered."""
    return "\n".join(f"- {note}" for note in notes)


@dataclass
class Report:
    """What ``suite report`` prints: the table in one format, and notes for the reader."""

    text: str
    notes: list[str]


def report(
    experiments: Sequence[str],
    tracking_uri: str,
    metrics: Sequence[str] | None = None,
    launch: str = "latest",
    fmt: str = "md",
    baseline: str | None = None,
    group_by: Sequence[str] = (),
    repeats: str = "latest",
) -> Report:
    """The table of one or more experiments' launches, as ``suite report`` prints it.

    Defaults come from the launch's resolved spec on the parent run (``report.metrics``,
    ``report.baseline``); ``group_by`` replaces the automatic row labels by the values of
    the given params or columns (``point`` is the spec's own grid label). ``repeats`` picks
    the run of a seed that ran more than once in a row (``latest``, ``first``) or keeps all.
    """
    if fmt not in FORMATS:
        raise SpecError(f"--format {fmt}: expected one of {', '.join(FORMATS)}")
    client = read_client(tracking_uri)
    frame, parents = read_launches(client, experiments, launch)
    if not (frame["status"] == "FINISHED").any():
        raise SuiteError(f"{', '.join(experiments)}: no finished child runs to report (launch: {launch})")
    if group_by:
        frame = _regroup(frame, group_by)
    spec_metrics, spec_baseline = _spec_defaults(parents)
    chosen, notes = choose_metrics(frame, metrics, spec_metrics)
    if baseline is None and spec_baseline is not None:
        try:
            table = results_table(frame, chosen, spec_baseline, repeats)
        except SpecError as error:  # the spec's baseline may not be among these rows: keep the table
            table = results_table(frame, chosen, repeats=repeats)
            notes.append(f"no paired view: report.{error}")
    else:
        table = results_table(frame, chosen, baseline, repeats)
    return Report(table.render(fmt), notes + table.notes())


def log_launch_results(parent: Tracker, results: Sequence[ChildResult], plan: LaunchPlan) -> str:
    """Log a finished (or fail-fast stopped) launch on its parent run; returns the text to print.

    ``results.json`` (label, seed, run id, summary, error per child), ``results.md`` (the table,
    with the paired view when the spec names a ``report.baseline``, and the notes), and one
    figure per curve metric the points' methods declare (``MethodEntry.curve_metric``).
    """
    frame = frame_from_children(results, plan, parent.run_id)
    parent.log_dict(
        [
            {
                "label": row.label,
                "point": row.point,
                "seed": int(row.seed),
                "run_id": row.run_id,
                "summary": {metric_key(key): value for key, value in result.summary.items()},
                "error": result.error,
            }
            for row, result in zip(frame.itertuples(index=False), results)
        ],
        "results.json",
    )
    metrics, notes = choose_metrics(frame, None, plan.base.report_metrics)
    baseline = (plan.base.to_dict().get("report") or {}).get("baseline")  # the resolved spec, as the parent's params hold it
    try:
        table = results_table(frame, metrics, baseline)
    except SpecError as error:
        table = results_table(frame, metrics)
        notes.append(f"no paired view: report.{error}")
    failed = [f"{row.label} seed={row.seed}: {result.error}" for row, result in zip(frame.itertuples(), results) if result.error]
    if failed:
        notes.append(f"{len(failed)} of {len(results)} runs failed: " + "; ".join(failed))
    text = table.render("md") + "\n\n" + bullets([*notes, *table.notes()])
    parent.log_text(text + "\n", "results.md")
    _log_parent_metrics(parent, table, len(results) - len(failed), len(failed))
    _log_curves(parent, results, frame, plan)
    return text


def _log_parent_metrics(parent: Tracker, table: ResultsTable, finished: int, failed: int) -> None:
    """The parent's row in the runs table: one row of results.md (the baseline's, else the first) and the run counts.

    Each report metric is logged under its own name as the mean over that row's seeds (a launch
    of one point: its whole result); ``suite.summary_row`` names the row.
    """
    counts = {"runs_finished": finished, "runs_failed": failed}
    if table.runs.empty:
        parent.log_metrics(counts)
        return
    row = table.baseline or table.stats.index[0]
    means = {metric: float(table.stats.loc[row, (metric, "mean")]) for metric in table.metrics}
    parent.log_metrics({**{key: value for key, value in means.items() if not math.isnan(value)}, **counts})
    parent.set_tags({"suite.summary_row": row[1]})


def _log_curves(parent: Tracker, results: Sequence[ChildResult], frame: pd.DataFrame, plan: LaunchPlan) -> None:
    """One figure per curve metric: one line per label, mean ± std over seeds, from the histories the launcher read."""
    from suite.plots import curve_figure

    points = children_points(results, plan)
    records: dict[str, list[tuple]] = defaultdict(list)
    for row, result in zip(frame.itertuples(index=False), results):
        if row.status == "FINISHED":
            for metric, history in result.curves.items():
                records[metric] += [(row.label, row.seed, row.run_id, step, value) for step, value in history]
    for metric, rows in records.items():
        if not rows:
            continue
        histories = pd.DataFrame.from_records(rows, columns=["label", "seed", "run_id", "step", "value"])
        stage = STAGE_NAMES.get(points[0].family, "stage")
        shown = metric_key(metric)
        figure = curve_figure(histories, shown, title=f"{plan.experiment}: {shown} after each {stage}", stage=stage)
        parent.log_figure(figure, f"{shown}.png")


def _spec_defaults(parents: Sequence[Run]) -> tuple[list[str] | None, str | None]:
    """``report.metrics`` (union in order) and the first ``report.baseline`` of the launches' specs."""
    metrics: list[str] = []
    baseline = None
    newest = {}
    for run in parents:  # newest first per experiment: the latest spec speaks for the experiment
        newest.setdefault(run.info.experiment_id, run)
    for run in newest.values():
        params = run.data.params
        listed = param_value(params.get("report.metrics", "None"))
        metrics += [metric for metric in listed or [] if metric not in metrics]
        baseline = baseline or params.get("report.baseline")
    return metrics or None, baseline


def _regroup(frame: pd.DataFrame, group_by: Sequence[str]) -> pd.DataFrame:
    unknown = [key for key in group_by if key not in frame.columns]
    if unknown:
        raise SpecError(f"--group-by {unknown[0]}: not a param of these runs; params: {', '.join(frame.attrs['params'])}")
    frame = frame.copy()
    frame["label"] = frame[list(group_by)].astype(str).apply(lambda row: " ".join(f"{key}={row[key]}" for key in group_by), axis=1)
    return frame


# The launch prints its table through these until it calls log_launch_results.
