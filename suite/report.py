"""Paper-style tables: mean ± std over seeds, one row per grid point, and a paired view against a baseline.

Built on the DataFrame of ``suite.results`` (one row per child run), so ``suite report``
(from MLflow's records, any past launch) and the launch itself (``log_launch_results``,
from the results in hand) print the same table. Tables are rendered by pandas
(``to_markdown``, ``to_csv``, ``to_latex``); statistics come from pandas and scipy.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient
from scipy import stats

from suite.errors import SpecError, SuiteError
from suite.latex import latex_table
from suite.results import (
    children_points,
    frame_from_children,
    one_run_per_seed,
    param_value,
    read_launches,
    repeated_seeds,
    resolve_metric,
)
from suite.tracking import metric_key

if TYPE_CHECKING:
    from mlflow.entities import Run

    from suite.launcher import ChildResult
    from suite.spec import LaunchPlan
    from suite.tracking import Tracker

FORMATS = ("md", "csv", "latex")
CONFIDENCE = 0.95
SIGNIFICANT_DIGITS = 3
MIN_SEEDS_FOR_A_RESULT = 5  # docs/methods.md 1.7: methods are compared over at least 5 seeds
STAGE_NAMES = {"continual": "experience", "sequential": "epoch"}
"""What one step of a method's curve metric is, by family, for the launch figure's x axis."""


@dataclass(frozen=True)
class PairedDifference:
    """Mean of per-seed differences (method - baseline) and its t-interval; NaN bounds below two pairs."""

    mean: float
    low: float
    high: float
    n: int


@dataclass
class ResultsTable:
    """Mean, std and count per metric and row, and the paired differences to a baseline row."""

    stats: pd.DataFrame
    """Index: (experiment, label); columns: (metric, 'mean' | 'std' | 'count')."""
    runs: pd.Series
    """Finished runs per row."""
    seeds: pd.Series
    """Distinct seeds per row."""
    metrics: list[str]
    baseline: tuple[str, str] | None = None
    paired: dict[tuple[tuple[str, str], str], PairedDifference] = field(default_factory=dict)
    """(row, metric) -> difference to the baseline row; the baseline's own row is absent."""
    repeats: str = "latest"
    """Which finished run of a repeated (row, seed) was pooled (``suite.results.REPEATS``)."""
    repeated: int = 0
    """Finished runs that repeat a (row, seed): left out, or with ``repeats='all'`` counted as samples."""

    def render(self, fmt: str = "md") -> str:
        """The table as Markdown, CSV (numbers, one column per statistic) or a LaTeX tabular."""
        if fmt == "csv":
            return self._numbers().to_csv(index=False)
        if self.runs.empty:
            return "(no finished runs)"
        cells = self._cells()
        if fmt == "latex":
            return self._latex(cells)
        keys = len(self._row_keys().columns)  # row keys read left-aligned, numbers right-aligned
        return cells.to_markdown(index=False, disable_numparse=True, colalign=["left"] * keys + ["right"] * (len(cells.columns) - keys))

    def notes(self) -> list[str]:
        """How many seeds each row ran, what one seed means, and how to read the paired column."""
        if self.runs.empty:
            return []
        seeds = sorted({int(seed) for row in self.seeds for seed in row})
        counts = sorted({len(row) for row in self.seeds})
        spread = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]} to {counts[-1]}"
        lines = [
            f"{spread} seed{'s' if counts[-1] > 1 else ''} per row (seeds {', '.join(map(str, seeds))}); cells are mean ± std over seeds"
        ]
        if self.repeated and self.repeats == "all":
            lines.append(
                f"{self.repeated} run(s) repeat a seed of their row and are counted as samples (--repeats all): "
                "n and std are not over independent seeds"
            )
        elif self.repeated:
            lines.append(
                f"{self.repeated} repeated run(s) of a seed in the same row left out: each row pools one run per seed, "
                f"the {self.repeats} finished one (--repeats all keeps them)"
            )
        if counts[-1] == 1:
            lines.append(f"one seed is an illustration, not a result: compare methods over at least {MIN_SEEDS_FOR_A_RESULT} seeds")
        elif counts[0] < MIN_SEEDS_FOR_A_RESULT:
            lines.append(f"fewer than {MIN_SEEDS_FOR_A_RESULT} seeds per row: differences of a few points may be seed noise")
        if self.baseline is not None:
            lines.append(
                f"Δ vs {self.baseline[1]}: mean per-seed difference over the seeds both rows ran (n), "
                f"{CONFIDENCE:.0%} t-interval in brackets"
            )
        return lines

    def _latex(self, cells: pd.DataFrame) -> str:
        baseline = self.baseline[1] if self.baseline is not None else None
        return latex_table(cells, len(self._row_keys().columns), baseline)

    def _show_experiment(self) -> bool:
        return self.stats.index.get_level_values("experiment").nunique() > 1

    def _row_keys(self) -> pd.DataFrame:
        keys = self.stats.index.to_frame(index=False)
        return keys if self._show_experiment() else keys[["label"]]

    def _numbers(self) -> pd.DataFrame:
        table = self._row_keys()
        table["n"] = self.runs.to_numpy()
        for metric in self.metrics:
            table[f"{metric} mean"] = self.stats[(metric, "mean")].to_numpy()
            table[f"{metric} std"] = self.stats[(metric, "std")].to_numpy()
            table[f"{metric} n"] = self.stats[(metric, "count")].to_numpy()
        if self.baseline is not None:
            for metric in self.metrics:
                differences = [self.paired.get((row, metric)) for row in self.stats.index]
                for part in ("mean", "low", "high", "n"):
                    name = f"{metric} Δ vs {self.baseline[1]}" if part == "mean" else f"{metric} Δ {part}"
                    table[name] = [getattr(d, part) if d else (0 if part == "n" else math.nan) for d in differences]
        return table

    def _cells(self) -> pd.DataFrame:
        table = self._row_keys()
        table["n"] = self.runs.to_numpy()
        decimals = {metric: column_decimals(self.stats[(metric, "mean")]) for metric in self.metrics}
        for metric in self.metrics:
            columns = self.stats[metric]
            table[metric] = [
                _summary_cell(row["mean"], row["std"], int(row["count"]), runs, decimals[metric])
                for (_, row), runs in zip(columns.iterrows(), self.runs)
            ]
        if self.baseline is not None:
            for metric in self.metrics:
                table[f"{metric} Δ vs {self.baseline[1]} [{CONFIDENCE:.0%} CI]"] = [
                    "baseline" if row == self.baseline else _paired_cell(self.paired.get((row, metric)), decimals[metric])
                    for row in self.stats.index
                ]
        return table


def results_table(frame: pd.DataFrame, metrics: Sequence[str], baseline: str | None = None, repeats: str = "latest") -> ResultsTable:
    """Summarize the finished runs of a results frame: one row per (experiment, label), one run per seed.

    ``baseline`` names a row (its label, the spec's point label, the method's name, or an
    experiment with one row); an unknown or ambiguous name is an error naming the rows.
    A seed run more than once in a row counts once (``repeats``: the latest or first finished
    run; ``all`` pools every run), in the means and in the pairs alike.
    """
    repeated = repeated_seeds(frame)
    frame, _ = one_run_per_seed(frame, repeats)
    finished = frame[frame["status"] == "FINISHED"]
    keys = ["experiment", "label"]
    values = finished[keys + ["seed"]].join(finished.reindex(columns=list(metrics)).apply(pd.to_numeric, errors="coerce"))
    grouped = values.groupby(keys, sort=False)
    table = ResultsTable(
        stats=grouped[list(metrics)].agg(["mean", "std", "count"]) if metrics else pd.DataFrame(index=grouped.size().index),
        runs=grouped.size(),
        seeds=grouped["seed"].unique(),
        metrics=list(metrics),
        repeats=repeats,
        repeated=repeated,
    )
    if baseline is not None and not table.runs.empty:
        row = find_row(frame, baseline)
        if len(table.runs) > 1:  # a baseline alone has nothing to be compared with
            table.baseline = row
            table.paired = _paired(values, keys, metrics, row)
    return table


def paired_difference(differences: Iterable[float], confidence: float = CONFIDENCE) -> PairedDifference:
    """Mean paired difference with a Student-t interval: mean ± t(1 - alpha/2, n - 1) * sd / sqrt(n)."""
    values = np.asarray([value for value in differences if not math.isnan(value)], dtype=float)
    n = len(values)
    if n == 0:
        return PairedDifference(math.nan, math.nan, math.nan, 0)
    mean = float(values.mean())
    if n == 1:
        return PairedDifference(mean, math.nan, math.nan, 1)
    error = float(stats.sem(values))
    if error == 0.0:  # identical differences: scipy answers NaN for a zero scale
        return PairedDifference(mean, mean, mean, n)
    low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=error)
    return PairedDifference(mean, float(low), float(high), n)


def column_decimals(values: pd.Series) -> int:
    """One precision per column: three significant digits of the column's largest magnitude (0.0527, 81.6, 1234)."""
    finite = pd.to_numeric(values, errors="coerce").abs().replace([np.inf], np.nan).dropna()
    largest = finite.max() if not finite.empty else 0.0
    if not largest:
        return 2
    return int(min(6, max(0, SIGNIFICANT_DIGITS - 1 - math.floor(math.log10(largest)))))


def find_row(frame: pd.DataFrame, name: str) -> tuple[str, str]:
    """The (experiment, label) row of finished runs that ``name`` designates."""
    rows = frame[frame["status"] == "FINISHED"].drop_duplicates(["experiment", "label"])
    per_experiment = rows.groupby("experiment")["label"].transform("size")
    method = rows["method.name"] if "method.name" in rows else pd.Series(None, index=rows.index)
    matches = rows[
        (rows["label"] == name) | (rows["point"] == name) | (method == name) | ((rows["experiment"] == name) & (per_experiment == 1))
    ]
    if matches.empty and name in set(frame["label"]) | set(frame["point"]):  # a label whose runs all failed
        raise SpecError(f"baseline '{name}' has no finished runs to compare with")
    found = list(dict.fromkeys(zip(matches["experiment"], matches["label"])))
    if len(found) != 1:
        described = "; ".join(f"{label} ({experiment})" for experiment, label in zip(rows["experiment"], rows["label"]))
        problem = "matches several rows" if found else "is not a row of this table"
        raise SpecError(f"baseline '{name}' {problem}; rows: {described}")
    return found[0]


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
    client = MlflowClient(tracking_uri)
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


def _paired(values: pd.DataFrame, keys: list[str], metrics: Sequence[str], baseline: tuple[str, str]) -> dict:
    per_seed = values.groupby([*keys, "seed"], sort=False)[list(metrics)].mean()
    base = per_seed.loc[baseline]
    paired = {}
    for row in per_seed.index.droplevel("seed").unique():
        if row == baseline:
            continue
        differences = per_seed.loc[row].sub(base).dropna(how="all")  # aligned on seed: only seeds both rows ran
        for metric in metrics:
            paired[(row, metric)] = paired_difference(differences[metric])
    return paired


def _summary_cell(mean: float, std: float, count: int, runs: int, decimals: int) -> str:
    if count == 0:
        return "-"
    cell = f"{mean:.{decimals}f}" if count == 1 else f"{mean:.{decimals}f} ± {std:.{decimals}f}"
    return cell if count == runs else f"{cell} (n={count})"


def _paired_cell(difference: PairedDifference | None, decimals: int) -> str:
    if difference is None or difference.n == 0:
        return "no shared seeds"
    if difference.n == 1:
        return f"{difference.mean:+.{decimals}f} (n=1)"
    return f"{difference.mean:+.{decimals}f} [{difference.low:+.{decimals}f}, {difference.high:+.{decimals}f}] (n={difference.n})"


# The launch prints its table through these until it calls log_launch_results.


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
