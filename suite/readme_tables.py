"""The README's measured tables, generated from the committed results CSVs (``suite export``), and checked against them.

A table lives between two markers, each at the start of a line outside fenced code; the opening
one says where its data is and what to show:

    <!-- results: results/study-coconut.csv metrics=avg_acc,last_acc,wer paired=avg_acc baseline="method=replay" -->
    ... generated: do not edit by hand ...
    <!-- /results -->

- the CSV path, relative to the README's folder (a file that does not exist yet gives a line
  saying so, so a block can be committed before its runs);
- ``metrics=``: the columns, in order: any metric of the CSV, ``wall_seconds``, or
  ``wall_minutes`` (the same in minutes);
- ``baseline=``: a row (its label, the spec's point label or the method's name, as ``suite report
  --baseline`` takes it): adds the paired difference to it with a 95% t-interval;
- ``paired=``: the metrics that get a paired column (default: every one of ``metrics``);
- ``experiments=``: only these experiments of the CSV.

Rows are the CSV's (experiment, label) rows of FINISHED runs, cells mean ± std over seeds, ``n``
the finished runs; statistics and paired intervals are ``suite.results_table.results_table``'s, the
same as ``suite report`` prints. Regenerate every block with ``suite readme-tables README.md``
(``make tables``); ``--check`` rewrites
nothing and exits 1 with a diff when a block does not match its CSV.
"""

from __future__ import annotations

import difflib
import math
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from suite.errors import SpecError, SuiteError
from suite.export import LEADING, PARAM, PROVENANCE, read_results
from suite.report import bullets
from suite.results_table import CONFIDENCE, PairedDifference, ResultsTable, column_decimals, results_table

BLOCK = re.compile(r"(^<!-- results: (?P<options>[^\n]*?) -->\n)(?P<body>.*?)(<!-- /results -->)", re.DOTALL | re.MULTILINE)
FENCE = re.compile(r"(^```.*?^```[^\n]*$)", re.DOTALL | re.MULTILINE)
"""A fenced code block: a marker shown there is documentation, not a table."""
DERIVED_COLUMNS = {"wall_minutes": ("wall_seconds", 1 / 60)}
OPTIONS = ("metrics", "baseline", "paired", "experiments")
NOT_METRICS = tuple(column for column in (*LEADING, *PROVENANCE) if column != "wall_seconds")


@dataclass(frozen=True)
class Block:
    """One marker's options: the CSV and what to show of it."""

    csv: str
    metrics: list[str]
    baseline: str | None = None
    paired: list[str] = field(default_factory=list)
    experiments: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str, where: str) -> Block:
        try:
            words = shlex.split(text)
        except ValueError as error:
            raise SpecError(f"{where}: results marker '{text}': {error}") from None
        if not words or "=" in words[0]:
            raise SpecError(f"{where}: results marker '{text}': expected the CSV path first")
        options: dict[str, str] = {}
        for word in words[1:]:
            key, sign, value = word.partition("=")
            if not sign or key not in OPTIONS:
                raise SpecError(f"{where}: results marker option '{word}': expected one of {', '.join(f'{o}=...' for o in OPTIONS)}")
            options[key] = value
        if not options.get("metrics"):
            raise SpecError(f"{where}: results marker '{text}': metrics=... is required")
        metrics = _names(options["metrics"])
        paired = _names(options["paired"]) if "paired" in options else (metrics if options.get("baseline") else [])
        unknown = [metric for metric in paired if metric not in metrics]
        if unknown:
            raise SpecError(f"{where}: results marker: paired metric '{unknown[0]}' is not one of metrics={','.join(metrics)}")
        experiments = _names(options.get("experiments", ""))
        return cls(words[0], metrics, options.get("baseline"), paired, experiments)


def render_block(block: Block, root: Path) -> str:
    """The generated text between a block's markers."""
    path = root / block.csv
    if not path.exists():
        return f"(no results yet: {block.csv} does not exist; `suite export EXPERIMENT --out {block.csv}` writes it)\n"
    frame = results_frame(path, block)
    if not (frame["status"] == "FINISHED").any():
        return f"(no finished runs in {block.csv} yet)\n"
    try:
        table = results_table(frame, block.metrics, block.baseline)
    except SpecError as error:
        raise SpecError(f"{block.csv}: {error}") from None
    keys = row_keys(table)
    return markdown(table, block, keys) + "\n\n" + bullets(table.notes(baseline_name(table, keys))) + "\n"


def results_frame(path: Path, block: Block) -> pd.DataFrame:
    """A results CSV as the frame ``results_table`` reads: numbers typed, the method's name as ``suite report`` matches it."""
    frame = read_results(path)
    if block.experiments:
        absent = [name for name in block.experiments if name not in set(frame["experiment"])]
        if absent:
            raise SpecError(f"{path}: no experiment '{absent[0]}'; it holds {', '.join(sorted(set(frame['experiment'])))}")
        frame = frame[frame["experiment"].isin(block.experiments)]
    frame = frame.copy()
    frame["seed"] = numbers(frame, "seed", path).astype("Int64")
    for name, (source, factor) in DERIVED_COLUMNS.items():
        if source in frame and name not in frame:
            frame[name] = numbers(frame, source, path) * factor
    known = [c for c in frame.columns if c not in NOT_METRICS and not c.startswith(PARAM)]
    unknown = [metric for metric in block.metrics if metric not in known]
    if unknown:
        raise SpecError(f"{path}: no metric column '{unknown[0]}'; it has {', '.join(known)}")
    for metric in block.metrics:
        frame[metric] = numbers(frame, metric, path)
    frame["method.name"] = frame.get(f"{PARAM}method.name")
    return frame.sort_values(["experiment", "label", "seed"], kind="stable")


def numbers(frame: pd.DataFrame, column: str, path: Path) -> pd.Series:
    """A column of the CSV as numbers (an empty cell: missing); text that is no number is an error naming it."""
    values = frame[column].replace("", math.nan) if frame[column].dtype == object else frame[column]
    try:
        return pd.to_numeric(values)
    except (ValueError, TypeError) as error:
        raise SpecError(f"{path}: column '{column}': {error}") from None


def row_keys(table: ResultsTable) -> list[str]:
    """The columns that name a row: the experiment where there are several, the label unless each experiment has one row."""
    rows_per_experiment = table.stats.index.get_level_values("experiment").value_counts()
    show_experiment = len(rows_per_experiment) > 1
    show_label = not show_experiment or bool((rows_per_experiment > 1).any())  # one row per experiment: its name says it
    return [*(["experiment"] if show_experiment else []), *(["label"] if show_label else [])]


def baseline_name(table: ResultsTable, keys: list[str]) -> str | None:
    """The baseline row as the table names it: its label, or its experiment where labels are not shown."""
    if table.baseline is None:
        return None
    return table.baseline[1] if "label" in keys else table.baseline[0]


def markdown(table: ResultsTable, block: Block, keys: list[str]) -> str:
    """The pipe table (pandas' ``to_markdown``): row keys, n, mean ± std per metric, then the paired columns asked for."""
    cells = table.stats.index.to_frame(index=False)[keys].copy()
    cells["n"] = table.runs.to_numpy()
    for metric in block.metrics:
        decimals = column_decimals(table.stats[(metric, "mean")])
        rows = zip(table.stats[metric][["mean", "std", "count"]].itertuples(index=False, name=None), table.runs)
        cells[metric] = [summary_cell(mean, std, int(count), runs, decimals) for (mean, std, count), runs in rows]
        if table.baseline is not None and metric in block.paired:
            cells[f"{metric} Δ vs {baseline_name(table, keys)} [{CONFIDENCE:.0%} CI]"] = [
                "baseline" if row == table.baseline else paired_cell(table.paired.get((row, metric)), runs, decimals)
                for row, runs in table.runs.items()
            ]
    paired = [column for column in cells.columns if " Δ vs " in column]
    cells = cells[[column for column in cells.columns if column not in paired] + paired]  # the paired columns last
    align = ["left"] * len(keys) + ["right"] * (len(cells.columns) - len(keys))  # row keys left-aligned, numbers right
    return cells.to_markdown(index=False, disable_numparse=True, colalign=align)


def summary_cell(mean: float, std: float, count: int, runs: int, decimals: int) -> str:
    """``mean ± std`` (one seed: the value), ``(n=k)`` when fewer runs than the row's logged the metric."""
    if count == 0:
        return "-"
    cell = f"{mean:.{decimals}f}" if count == 1 else f"{mean:.{decimals}f} ± {std:.{decimals}f}"
    return cell if count == runs else f"{cell} (n={count})"


def paired_cell(difference: PairedDifference | None, runs: int, decimals: int) -> str:
    """``+1.5 [-1.1, +4.2]``; ``(n=k)`` when the pairs are fewer than the row's runs."""
    if difference is None or difference.n == 0:
        return "no shared seeds"
    if difference.n == 1:
        return f"{difference.mean:+.{decimals}f} (n=1)"
    cell = f"{difference.mean:+.{decimals}f} [{difference.low:+.{decimals}f}, {difference.high:+.{decimals}f}]"
    return cell if difference.n == runs else f"{cell} (n={difference.n})"


def regenerate(text: str, root: Path, where: str = "README") -> str:
    """``text`` with every results block generated again from its CSV."""

    def replace(match: re.Match[str]) -> str:
        block = Block.parse(match["options"], where)
        return match.group(1) + render_block(block, root) + match.group(4)

    parts = FENCE.split(text)  # odd parts are fenced code
    return "".join(part if index % 2 else BLOCK.sub(replace, part) for index, part in enumerate(parts))


def count_blocks(text: str) -> int:
    return sum(len(BLOCK.findall(part)) for part in FENCE.split(text)[::2])


@dataclass(frozen=True)
class Outcome:
    """What a run of the command found: how many blocks, and the diff of the stale ones (empty: up to date)."""

    blocks: int
    diff: str


def update(readme: Path, check: bool = False) -> Outcome:
    """Regenerate ``readme``'s blocks in place, or with ``check`` only compare them."""
    try:
        text = readme.read_text()
    except OSError as error:
        raise SuiteError(f"{readme}: cannot read it ({error.strerror})") from None
    fresh = regenerate(text, readme.parent, str(readme))
    diff = "".join(difflib.unified_diff(text.splitlines(True), fresh.splitlines(True), f"{readme} (as it is)", f"{readme} (from the CSVs)"))
    if diff and not check:
        readme.write_text(fresh)
    return Outcome(count_blocks(text), diff)


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]
