"""A launch's results as a pandas DataFrame: the notebook entry point, and what ``suite report`` reads.

    >>> from suite.results import launch_results
    >>> runs = launch_results("spoken-replay")                  # the latest launch, ./mlflow.db
    >>> runs.groupby("label")["avg_acc"].agg(["mean", "std", "count"])

One row per child run (one seed of one grid point): ``experiment``, ``label`` (the values
that differ between the points, e.g. ``method.replay.size=100``), ``point`` (the spec's own
point label), ``seed``, ``status``, ``run_id``, ``parent_run_id``, then every param under its
dotted spec key (``train.lr``, typed back from MLflow's strings) and every metric under the
one name the dashboard, the terminal and the tables all show (``test.ndcg_at_10``: MLflow
refuses '@' in a name). ``resolve_metric`` takes any spelling (``NDCG@10``, ``test.ndcg@10``).
``frame.attrs["params"]`` and ``frame.attrs["metrics"]`` list which columns are which.
Rows come in start order. The same seed of the same point run twice (two launches, ``--launch
all``) gives two rows: ``one_run_per_seed(runs)`` keeps the latest finished one of each, as
``suite report`` does, so repeats are never counted as samples.

Everything is read through an ``MlflowClient`` built for the given URI: nothing here sets
MLflow's global tracking URI, so a notebook can read several stores side by side.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from suite.errors import SpecError, SuiteError
from suite.recorded_settings import with_current_defaults
from suite.tracking import default_tracking_uri, flatten, metric_key, read_client

if TYPE_CHECKING:
    from suite.launch_types import ChildResult
    from suite.spec import LaunchPlan, ResolvedSpec

IDENTITY_COLUMNS = ("experiment", "label", "point", "seed", "status", "run_id", "parent_run_id")
NOT_SETTINGS = ("seed", "seeds", "experiment", "description", "grid", "report")
"""Spec keys that never tell two grid points apart (the seed is a column of its own)."""
DERIVED = "derived."  # params a run derives from its data and seed (class order, sizes): they describe it, never label it
SECTION_ORDER = ("scenario", "model", "method", "train")
"""The spec sections whose keys are settings, in spec order."""


def is_setting(param: str) -> bool:
    """Whether a logged param is a spec setting (labels are made of these), not something the run measured
    or derived (``derived.*``, ``recbole.flops``, ``mclrec.optimization``), which a run that ended early lacks."""
    return param.split(".")[0] in SECTION_ORDER and not param.startswith(DERIVED)


METRIC_PREFERENCE = ("test.", "valid.")
"""Which prefix an unprefixed metric name (``NDCG@10``) means when several are logged."""
PAGE_SIZE = 1000
REPEATS = ("latest", "first", "all")
"""Which finished run of a (row, seed) a table pools: the latest, the first, or every one (repeats counted as samples)."""


def launch_results(experiment: str | Sequence[str], tracking_uri: str | None = None, launch: str = "latest") -> pd.DataFrame:
    """One row per child run of a launch: identity columns, params, metrics, status.

    ``experiment`` is a name or a list of names (their rows are stacked, in that order).
    ``launch`` picks whose children: ``latest`` (the newest launch of each experiment),
    ``all`` (every launch), or a parent run id. ``tracking_uri`` defaults to
    ``$MLFLOW_TRACKING_URI``, else ``./mlflow.db``, as the ``suite`` command does.
    """
    uri = tracking_uri or default_tracking_uri()
    client = read_client(uri)  # reading never creates a store
    frame, _ = read_launches(client, [experiment] if isinstance(experiment, str) else list(experiment), launch)
    return frame


def read_launches(client: MlflowClient, experiments: Sequence[str], launch: str) -> tuple[pd.DataFrame, list[Run]]:
    """The children frame of ``experiments`` and the parent runs they came from (newest first per experiment)."""
    if launch not in ("latest", "all") and len(experiments) > 1:
        raise SuiteError(
            f"--launch {launch}: a parent run id names one launch of one experiment; with several experiments use 'latest' or 'all'"
        )
    rows: list[dict[str, Any]] = []
    parents: list[Run] = []
    for name in experiments:
        experiment_id = _experiment_id(client, name)
        chosen = _parents(client, experiment_id, name, launch)
        parents += chosen
        rows += [_run_row(name, run) for run in _children(client, experiment_id, chosen, launch)]
    return children_frame(rows), parents


def one_run_per_seed(frame: pd.DataFrame, repeats: str = "latest") -> tuple[pd.DataFrame, int]:
    """The frame with one finished run per (experiment, label, seed), and how many repeats were left out.

    Rows must be in start order (as ``launch_results`` gives them): ``latest`` keeps the last
    finished run of each seed, ``first`` the first, ``all`` every run. Unfinished runs stay:
    they are not pooled anyway.
    """
    if repeats not in REPEATS:
        raise SpecError(f"--repeats {repeats}: expected one of {', '.join(REPEATS)}")
    finished = frame[frame["status"] == "FINISHED"]
    if repeats == "all" or finished.empty:
        return frame, 0
    repeated = finished.duplicated(["experiment", "label", "seed"], keep="last" if repeats == "latest" else "first")
    return frame.drop(index=finished.index[repeated]), int(repeated.sum())


def repeated_seeds(frame: pd.DataFrame) -> int:
    """How many finished runs repeat a (row, seed) that another finished run already ran."""
    finished = frame[frame["status"] == "FINISHED"]
    return int(finished.duplicated(["experiment", "label", "seed"]).sum())


def children_frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Rows (identity keys, ``params``, ``metrics`` dicts) as the documented DataFrame, labelled."""
    rows = list(rows)
    params = _ordered_union(row["params"] for row in rows)
    metrics = _ordered_union(row["metrics"] for row in rows)
    records = []
    for row in rows:
        record = {column: row.get(column) for column in IDENTITY_COLUMNS}
        record.update({_column(key, metrics): value for key, value in row["params"].items()})
        record.update(row["metrics"])
        records.append(record)
    param_columns = [_column(key, metrics) for key in params]
    frame = pd.DataFrame.from_records(records, columns=[*IDENTITY_COLUMNS, *param_columns, *metrics])
    frame["seed"] = frame["seed"].astype("Int64")
    settings = [with_current_defaults({key: value for key, value in row["params"].items() if is_setting(key)}) for row in rows]
    frame["label"] = point_labels(settings, [row["point"] for row in rows])
    frame.attrs["params"] = param_columns
    frame.attrs["metrics"] = metrics
    return frame


def frame_from_children(results: Sequence[ChildResult], plan: LaunchPlan, parent_run_id: str) -> pd.DataFrame:
    """The same frame as ``launch_results``, from a launch's results in hand (no MLflow reads)."""
    rows = [
        {
            "experiment": plan.experiment,
            "point": result.label,
            "seed": result.seed,
            "status": "FAILED" if result.error else "FINISHED",
            "run_id": result.run_id,
            "parent_run_id": parent_run_id,
            "params": point_settings(point.to_dict()),
            "metrics": {metric_key(key): value for key, value in result.summary.items()},
        }
        for result, point in zip(results, children_points(results, plan))
    ]
    return children_frame(rows)


def children_points(results: Sequence[ChildResult], plan: LaunchPlan) -> list[ResolvedSpec]:
    """The grid point each result ran.

    Labels alone do not say it (two points of a ``method`` axis are both ``method=replay``
    when only the buffer differs), so results are matched in launch order: point by point,
    seed by seed, as the launcher opens the children (a fail-fast stop leaves a prefix).
    """
    expected = [(label, seed, point) for label, point in plan.points for seed in point.seeds]
    points = []
    for index, result in enumerate(results):
        if index >= len(expected) or expected[index][:2] != (result.label, result.seed):
            raise SuiteError(f"result {index} ({result.label} seed={result.seed}) is not in the launch order of plan '{plan.experiment}'")
        points.append(expected[index][2])
    return points


def point_settings(tree: dict[str, Any]) -> dict[str, Any]:
    """A resolved spec tree as the flat settings a child run logs as params (seed and bookkeeping left out)."""
    return {key: value for key, value in flatten(tree).items() if key.split(".")[0] not in NOT_SETTINGS}


def point_labels(settings: Sequence[dict[str, Any]], fallback: Sequence[str]) -> list[str]:
    """Label each run by the settings that differ between the grid points, e.g. ``method=replay method.replay.size=100``.

    ``settings`` holds each run's flat settings (absent key: the run's method has no such
    option; ``None``: it has one, unset). A key is shown when the points that have it disagree
    on its value, so a key only one method has does not clutter the others' labels; keys that
    some points lack join only when needed to tell points apart, and a key that tells no
    points apart beyond the keys before it (a method's own tuned lr) is left out. Points with
    identical settings share a label, so their seeds pool. When nothing differs, ``fallback`` (the
    spec's own point label) is kept.
    """
    texts = [{key: _text(value) for key, value in setting.items()} for setting in settings]
    keys = sorted(_ordered_union(texts), key=setting_order)
    points = list({tuple(sorted(text.items())): text for text in texts}.values())
    varying = [key for key in keys if len({point[key] for point in points if key in point}) > 1]
    if len({_label(point, varying) for point in points}) < len(points):
        partial = {key for key in keys if 0 < sum(key in point for point in points) < len(points)}
        varying = [key for key in keys if key in varying or key in partial]
    shown: list[str] = []
    for key in varying:  # settings that ride along with an earlier one (a method's own lr) tell nothing new
        if len({_label(point, [*shown, key]) for point in points}) > len({_label(point, shown) for point in points}):
            shown.append(key)
    if not shown:
        return list(fallback)
    return [_label(text, shown) for text in texts]


def metric_histories(client: MlflowClient, runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """``label, seed, run_id, step, value`` of one stepped metric for each run of ``runs`` (last value per step)."""
    records = []
    for order, run in enumerate(runs.itertuples(index=False)):
        for entry in client.get_metric_history(run.run_id, metric_key(metric)):
            records.append((order, entry.timestamp, run.label, run.seed, run.run_id, entry.step, entry.value))
    history = pd.DataFrame.from_records(records, columns=["order", "at", "label", "seed", "run_id", "step", "value"])
    history = history.sort_values(["order", "step", "at"]).drop_duplicates(["run_id", "step"], keep="last")  # runs in given order
    return history.drop(columns=["order", "at"]).reset_index(drop=True)


def spec_metric_name(key: str) -> str:
    """The one name a metric is shown under: MLflow's key (``test.ndcg_at_10``), whatever spelling logged it."""
    return metric_key(key)


def resolve_metric(requested: str, known: Sequence[str]) -> str | None:
    """The metric of ``known`` that ``requested`` names, in any spelling; None when none (or several) fit.

    ``NDCG@10``, ``ndcg_at_10``, ``test.ndcg@10`` and ``TEST.NDCG_AT_10`` all name ``test.ndcg_at_10``:
    '@' reads as ``_at_``, case is ignored, and a name without its prefix takes the one logged
    metric that ends with it (``test.`` first, then ``valid.``, when both exist).
    """
    wanted = metric_key(requested.strip())
    if wanted in known:
        return wanted
    folded = {name.lower(): name for name in known}
    if wanted.lower() in folded:
        return folded[wanted.lower()]
    endings = [name for name in known if name.lower().endswith("." + wanted.lower())]
    for prefix in METRIC_PREFERENCE:
        preferred = [name for name in endings if name.lower() == prefix + wanted.lower()]
        if preferred:
            return preferred[0]
    return endings[0] if len(endings) == 1 else None


def param_value(text: str) -> Any:
    """A param string back to the value the spec held (numbers, booleans, None, lists stay typed)."""
    if text in ("None", "True", "False"):
        return {"None": None, "True": True, "False": False}[text]
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if not isinstance(value, str) else text


def _experiment_id(client: MlflowClient, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        known = ", ".join(e.name for e in client.search_experiments()) or "none"
        raise SuiteError(f"no experiment named '{name}' in {client.tracking_uri}; known: {known}")
    return experiment.experiment_id


def _parents(client: MlflowClient, experiment_id: str, name: str, launch: str) -> list[Run]:
    """The parent runs ``launch`` names, newest first."""
    parents = _search(client, experiment_id, "tags.`suite.kind` = 'parent'", ["attributes.start_time DESC"])
    if launch == "all":
        return parents
    if launch == "latest":
        return parents[:1]
    chosen = [run for run in parents if run.info.run_id == launch]
    if not chosen:
        raise SuiteError(
            f"--launch {launch}: not a parent run of experiment '{name}'; expected 'latest', 'all' or one of "
            + (", ".join(run.info.run_id for run in parents[:5]) or "none (no launches yet)")
        )
    return chosen


def _children(client: MlflowClient, experiment_id: str, parents: list[Run], launch: str) -> list[Run]:
    query = "tags.`suite.kind` = 'child'"
    if launch != "all":
        if not parents:
            return []
        query += f" and tags.`mlflow.parentRunId` = '{parents[0].info.run_id}'"
    return _search(client, experiment_id, query, ["attributes.start_time ASC"])


def _search(client: MlflowClient, experiment_id: str, query: str, order_by: list[str]) -> list[Run]:
    runs: list[Run] = []
    token = None
    while True:
        page = client.search_runs([experiment_id], query, max_results=PAGE_SIZE, order_by=order_by, page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            return runs


def _run_row(experiment: str, run: Run) -> dict[str, Any]:
    tags = run.data.tags
    params = {key: param_value(text) for key, text in run.data.params.items() if key.split(".")[0] not in NOT_SETTINGS}
    return {
        "experiment": experiment,
        "point": tags.get("suite.point"),
        "seed": int(tags["suite.seed"]) if "suite.seed" in tags else param_value(run.data.params.get("seed", "None")),
        "status": run.info.status,
        "run_id": run.info.run_id,
        "parent_run_id": tags.get("mlflow.parentRunId"),
        "params": params,
        "metrics": {spec_metric_name(key): value for key, value in run.data.metrics.items()},
    }


def _ordered_union(mappings: Iterable[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(key for mapping in mappings for key in mapping))


def _column(param: str, metrics: Sequence[str]) -> str:
    """A param's column name: its dotted key, unless a metric has that name."""
    return f"params.{param}" if param in metrics or param in IDENTITY_COLUMNS else param


def _text(value: Any) -> str:
    """A setting as label text: the same text from a spec tree and from the params MLflow gives back."""
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def setting_order(key: str) -> tuple[int, bool, str]:
    """Spec order (scenario, model, method, train), a section's name first: MLflow returns params sorted by name."""
    section = key.split(".")[0]
    rank = SECTION_ORDER.index(section) if section in SECTION_ORDER else len(SECTION_ORDER)
    return rank, key != f"{section}.name", key


def _label(point: dict[str, str], keys: Sequence[str]) -> str:
    """``method=replay method.replay.size=100``: a section's ``name`` reads as the section, as in the spec's grid labels."""
    shown = {key: key[: -len(".name")] if key.endswith(".name") and key.count(".") == 1 else key for key in keys}
    return " ".join(f"{shown[key]}={point[key]}" for key in keys if key in point)
