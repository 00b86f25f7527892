"""Per-seed results as a CSV to commit: one row per child run, what the README's measured tables are made from.

    suite export study-spoken --out results/study-spoken.csv            # every launch of the experiment
    suite export sasrec-ml100k mclrec-ml100k --out results/ml100k.csv  # several experiments, one file
    suite export study-spoken --out results/study-spoken.csv --append  # keep rows the store no longer has

Columns, in this order:

- ``experiment``, ``label`` (the row label ``suite report`` gives the run: the settings that differ
  between the points, ``suite.results.point_labels``), ``seed``, ``status``;
- every final metric the run logged, by the one name the tables show (``avg_acc``, ``test.ndcg_at_10``),
  in name order; for runs that early-stop on a validation metric (sequential runs) also
  ``epochs_to_best`` (epochs up to the best validation score) and ``epochs_run``;
- ``wall_seconds``: the run's ``train_seconds`` metric (every segment of a resumed run, not the wait
  before a resume: ``suite.run_clock``); for a sequential run logged before it had one, the sum
  over its segments of the last per-epoch ``train.elapsed_s``; else MLflow's end minus start time;
  ``git_commit`` (the suite's commit the run was launched from), ``suite_version``
  (the installed cl-suite), ``run_id``, ``point`` (the spec's own grid-point label);
- ``params.<key>``: every setting of the run (its flattened spec, seed and bookkeeping left out, as
  MLflow's params hold it), so that a row says by itself what ran, in spec order.

One row per (experiment, label, seed): when a point and seed ran more than once (a relaunch, a
resumed run), the latest FINISHED run is kept, else the latest run that ended (FAILED, KILLED);
runs still RUNNING are left out. Rows are sorted by experiment, label and seed, floats are written
with 6 significant digits, so that a file re-exported after more seeds ran changes by the new rows.

Adding seeds later: launch them into the same store and export again (the file is rewritten from
every launch), or, with ``--append``, from any store: rows already in the file are kept unless the
store has the same settings and seed, and labels are computed again over the merged rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.entities import Metric, Run
from mlflow.tracking import MlflowClient

from suite.errors import SuiteError
from suite.results import DERIVED, NOT_SETTINGS, param_value, point_labels, read_launches, setting_order, spec_metric_name
from suite.tracking import metric_key, read_client

ELAPSED = "train.elapsed_s"  # logged by sequential runs after each epoch's training (suite.sequential.pipeline.EpochLog)
EPOCH_VALID = "valid_epoch"  # the per-epoch validation metrics of sequential runs (suite.sequential.pipeline.EPOCH_VALID)
LEADING = ("experiment", "label", "seed", "status")
PROVENANCE = ("wall_seconds", "git_commit", "suite_version", "run_id", "point")
PARAM = "params."
ENDED = ("FINISHED", "FAILED", "KILLED")
FLOAT_FORMAT = ".6g"
COMMIT_TAG = "mlflow.source.git.commit"
VERSION_TAG = "suite.version.cl-suite"


@dataclass(frozen=True)
class Export:
    """What an export wrote: the rows, and how many came from the store and from the file before."""

    rows: pd.DataFrame
    from_store: int
    kept: int


def export(experiments: Sequence[str], out: Path, tracking_uri: str, launch: str = "all", append: bool = False) -> Export:
    """Write ``out`` from the child runs of ``experiments`` (``launch``: all, latest, or a parent run id)."""
    new = store_rows(read_client(tracking_uri), experiments, launch)
    if new.empty:
        raise SuiteError(f"{', '.join(experiments)}: no ended child runs to export (launch: {launch})")
    kept = 0
    if append and out.exists():
        old = read_results(out)
        new, kept = merge(old, new)
    write_results(new, out)
    return Export(new, len(new) - kept, kept)


def store_rows(client: MlflowClient, experiments: Sequence[str], launch: str) -> pd.DataFrame:
    """One row per ended child run of ``experiments``, labelled as ``suite report`` labels them, deduplicated."""
    frame, _ = read_launches(client, experiments, launch)
    rows = []
    for record in frame[["experiment", "label", "run_id"]].itertuples(index=False):
        run = client.get_run(record.run_id)
        if run.info.status in ENDED:
            rows.append(run_row(record.experiment, record.label, run, client))
    return ordered(latest_per_seed(rows))


def run_row(experiment: str, label: str, run: Run, client: MlflowClient | None = None) -> dict[str, Any]:
    """A child run as CSV cells (strings; an empty cell is a value the run does not have)."""
    tags, info = run.data.tags, run.info
    metrics = {spec_metric_name(key): value for key, value in run.data.metrics.items()}
    if client is not None:
        metrics.update(epoch_counts(client, run))
    duration = (info.end_time - info.start_time) / 1000 if info.end_time and info.start_time else math.nan
    if client is not None and "train_seconds" not in metrics:
        duration = segments_seconds(client.get_metric_history(info.run_id, ELAPSED)) or duration
    settings = {
        f"{PARAM}{key}": text
        for key, text in run.data.params.items()
        if key.split(".")[0] not in NOT_SETTINGS and not key.startswith(DERIVED)
    }
    seed = tags.get("suite.seed", run.data.params.get("seed", ""))
    return {
        "experiment": experiment,
        "label": label,
        "seed": str(seed),
        "status": info.status,
        **{name: number_text(value) for name, value in metrics.items()},
        "wall_seconds": number_text(metrics.get("train_seconds", duration)),
        "git_commit": tags.get(COMMIT_TAG, ""),
        "suite_version": tags.get(VERSION_TAG, ""),
        "run_id": info.run_id,
        "point": tags.get("suite.point", ""),
        **settings,
        "_start": info.start_time or 0,
    }


def epoch_counts(client: MlflowClient, run: Run) -> dict[str, float]:
    """For a run that early-stops on ``train.valid_metric`` (sequential runs): epochs to its best validation score, epochs run.

    Read from the per-epoch validation history (``valid_epoch.<metric>``, step = epoch from 0);
    the best is the first epoch with the highest score, as RecBole's early stopping keeps it.
    """
    valid_metric = run.data.params.get("train.valid_metric")
    if not valid_metric:
        return {}
    history = client.get_metric_history(run.info.run_id, metric_key(f"{EPOCH_VALID}.{valid_metric.lower()}"))
    scores = {entry.step: entry.value for entry in sorted(history, key=lambda entry: (entry.step, entry.timestamp))}
    if not scores:
        return {}
    best = max(scores.values())
    return {"epochs_to_best": min(step for step, score in scores.items() if score == best) + 1, "epochs_run": max(scores) + 1}


def segments_seconds(history: Sequence[Metric]) -> float | None:
    """Seconds a run trained, from its per-epoch ``train.elapsed_s``, whose count restarted in each process
    that resumed it (before ``train_seconds`` existed); None without a history.

    A point starts a new segment when its own process started (its timestamp minus its elapsed
    seconds) after the point before it was logged; each segment adds its last elapsed value. The
    epoch a kill interrupted and the wait before the resume are not counted.
    """
    total, last, last_logged = 0.0, None, -math.inf
    for point in sorted(history, key=lambda point: point.timestamp):
        logged = point.timestamp / 1000
        if last is not None and logged - point.value > last_logged:
            total += last
        last, last_logged = point.value, logged
    return None if last is None else total + last


def latest_per_seed(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows keyed by (experiment, label, seed): the latest FINISHED run, else the latest one that ended."""
    frame = pd.DataFrame.from_records(rows)
    if frame.empty:
        return frame
    frame["_finished"] = frame["status"] == "FINISHED"
    frame = frame.sort_values(["_finished", "_start"]).drop_duplicates(["experiment", "label", "seed"], keep="last")
    return frame.drop(columns=["_finished", "_start"])


def merge(old: pd.DataFrame, new: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """``new`` plus the rows of ``old`` whose settings and seed it lacks, labelled again; and how many were kept."""
    params = sorted({column for column in [*old.columns, *new.columns] if column.startswith(PARAM)})
    old, new = old.reindex(columns=old.columns.union(params)).fillna(""), new.reindex(columns=new.columns.union(params)).fillna("")
    key = ["experiment", "seed", *params]
    known = set(map(tuple, new[key].to_numpy().tolist()))
    kept = old[[tuple(row) not in known for row in old[key].to_numpy().tolist()]]
    merged = pd.concat([new, kept], ignore_index=True).fillna("")
    settings = [
        {column[len(PARAM) :]: param_value(text) for column, text in zip(params, values) if text != ""}
        for values in merged[params].to_numpy().tolist()
    ]
    merged["label"] = point_labels(settings, merged["point"].tolist())
    return ordered(merged), len(kept)


def ordered(frame: pd.DataFrame) -> pd.DataFrame:
    """The documented column order, rows sorted by experiment, label and seed (as a number)."""
    if frame.empty:
        return frame
    frame = frame.fillna("")
    params = sorted((c for c in frame.columns if c.startswith(PARAM)), key=lambda c: setting_order(c[len(PARAM) :]))
    metrics = sorted(c for c in frame.columns if c not in (*LEADING, *PROVENANCE, *params))
    frame = frame[[*LEADING, *metrics, *PROVENANCE, *params]]
    order = frame.assign(_seed=pd.to_numeric(frame["seed"], errors="coerce")).sort_values(["experiment", "label", "_seed"], kind="stable")
    return order.drop(columns="_seed").reset_index(drop=True)


def number_text(value: Any) -> str:
    """A metric as fixed-precision text (6 significant digits), empty when missing or not finite."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return format(float(value), FLOAT_FORMAT)


def write_results(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, lineterminator="\n")


def read_results(path: Path) -> pd.DataFrame:
    """An exported CSV as text cells (empty: the run has no such value), the way ``merge`` and the tables read it."""
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise SuiteError(f"{path}: not a results CSV ({error})") from None
    missing = [column for column in (*LEADING, *PROVENANCE) if column not in frame.columns]
    if missing:
        raise SuiteError(f"{path}: not a results CSV written by `suite export`: no column '{missing[0]}'")
    return frame
