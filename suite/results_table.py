"""The statistics of a results table: mean ± std per row and metric over one run per seed, paired differences.

A paired difference is the mean of the per-seed differences (method - baseline) over the seeds
both rows ran, with its t-interval: methods of one launch share seeds, data order and class
order, so their results pair by seed (docs/methods.md 1.7). Cells are rounded to three
significant digits of the column's largest value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import stats

from suite.errors import SpecError
from suite.latex import latex_table
from suite.results import (
    one_run_per_seed,
    repeated_seeds,
)

if TYPE_CHECKING:
    pass

FORMATS = ("md", "csv", "latex")


CONFIDENCE = 0.95


SIGNIFICANT_DIGITS = 3


MIN_SEEDS_FOR_A_RESULT = 5  # docs/methods.md 1.7: methods are compared over at least 5 seeds


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

    def notes(self, baseline_name: str | None = None) -> list[str]:
        """How many seeds each row ran, what one seed means, and how to read the paired column.

        ``baseline_name``: the baseline as the table names it, where that is not its label
        (a README table of one row per experiment shows the experiment's name instead).
        """
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
                f"Δ vs {baseline_name or self.baseline[1]}: mean per-seed difference over the seeds both rows ran (n), "
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


def _paired(values: pd.DataFrame, keys: list[str], metrics: Sequence[str], baseline: tuple[str, str]) -> dict:
    per_seed = values.groupby([*keys, "seed"])[list(metrics)].mean()  # sorted: lookups by row need a lexsorted index
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
