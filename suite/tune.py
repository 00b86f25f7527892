"""``suite tune``: choose hyperparameters on validation data only, with the same budget for every method.

The grid (or a seeded sample of ``budget`` points of it) runs as one launch with
``evaluation="valid"``: methods never read test data and report ``valid.*`` metrics. The
point with the best mean objective over the spec's seeds wins; the ranking goes on the
parent run as ``tuning.json`` and the winning values come back as a YAML fragment to paste
into the spec, with a comment naming the sweep that chose them (docs/methods.md 1.7: the chosen
values and the search are recorded).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import yaml

from suite import spec as specs
from suite.errors import SpecError, SuiteError
from suite.grid import axis_paths
from suite.results import children_points, frame_from_children, setting_order
from suite.tracking import metric_key

OBJECTIVE_PREFIXES = ("valid.", "best_valid.")
TUNE_SUFFIX = "-tune"


@dataclass
class Tuning:
    """A finished tuning launch: the ranking, the winner and its spec fragment."""

    experiment: str
    parent_run_id: str
    objective: str
    maximize: bool
    ranking: pd.DataFrame
    fragment: str
    failed: list[Any]
    """The ``ChildResult`` of every run that failed (they rank on the seeds that finished)."""

    @property
    def record(self) -> dict[str, Any]:
        """What ``tuning.json`` holds."""
        ranking = self.ranking.astype(object).where(self.ranking.notna(), None)  # JSON has no NaN
        return {
            "experiment": self.experiment,
            "parent_run_id": self.parent_run_id,
            "objective": self.objective,
            "direction": "maximize" if self.maximize else "minimize",
            "ranking": ranking.to_dict(orient="records"),
            "winner": ranking.iloc[0].to_dict(),
            "fragment": self.fragment,
        }


def check_objective(objective: str) -> None:
    """Tuning reads validation metrics only: an objective on test data is refused before anything runs."""
    if not objective.startswith(OBJECTIVE_PREFIXES):
        raise SpecError(
            f"--objective {objective}: tuning must choose on validation data; expected a metric starting with "
            + " or ".join(f"'{prefix}'" for prefix in OBJECTIVE_PREFIXES)
            + " (e.g. valid.avg_acc), never test"
        )


def tuning_plan(
    spec_file: str,
    overrides: Sequence[str],
    grid: Sequence[str],
    budget: int | None,
    sample_seed: int,
    experiment: str | None,
    selection: tuple[Sequence[str], Sequence[str]] = ((), ()),
) -> tuple[specs.LaunchPlan, int]:
    """The launch plan of a tuning sweep, logged to ``<experiment>-tune`` unless told otherwise, and the size of
    the grid it samples from (the points ``selection``, the ``--only`` and ``--skip`` labels, keeps)."""
    only, skip = selection
    if experiment is None:
        experiment = specs.plan(spec_file, overrides, grid, check_data=False).experiment + TUNE_SUFFIX
    plan = specs.plan(spec_file, [*overrides, f"experiment={experiment}"], grid, only=only, skip=skip)
    if len(plan.points) < 2:
        raise SpecError(f"{spec_file}: nothing to tune: give a grid (-g key=[v1,v2] or a grid: section) with at least two points")
    return sample_points(plan, budget, sample_seed), len(plan.points)


def sample_points(plan: specs.LaunchPlan, budget: int | None, seed: int) -> specs.LaunchPlan:
    """At most ``budget`` grid points, drawn without replacement by ``seed`` and kept in grid order."""
    if budget is None or budget >= len(plan.points):
        return plan
    chosen = np.sort(np.random.default_rng(seed).choice(len(plan.points), size=budget, replace=False))
    return replace(plan, points=[plan.points[index] for index in chosen])


def rank_points(frame: pd.DataFrame, objective: str, maximize: bool, seeds: Sequence[int]) -> pd.DataFrame:
    """One row per point, best first: mean, std and number of seeds of the objective over the finished runs.

    Only points that finished every seed can win; the others follow, marked incomplete.
    """
    finished = frame[frame["status"] == "FINISHED"]
    if objective not in finished or finished[objective].isna().all():
        logged = [metric for metric in frame.attrs.get("metrics", []) if metric in finished and finished[metric].notna().any()]
        raise SuiteError(f"no run reported the objective '{objective}'; the runs logged: {', '.join(logged) or 'no metrics'}")
    ranking = finished.groupby("label", sort=False)[objective].agg(["mean", "std", "count"]).reset_index()
    ranking["complete"] = ranking["count"] >= len(seeds)
    ranking = ranking.sort_values(["complete", "mean"], ascending=[False, not maximize], kind="stable", na_position="last")
    ranking.insert(0, "rank", range(1, len(ranking) + 1))
    return ranking.rename(columns={"count": "seeds"}).reset_index(drop=True)


def spec_fragment(
    plan: specs.LaunchPlan, point: specs.ResolvedSpec, objective: str, maximize: bool, parent_run_id: str, grid_size: int
) -> str:
    """The winning point's values on the grid's axes as YAML to paste into the spec, under a comment naming the sweep."""
    tree = point.to_dict()
    nested: dict[str, Any] = {}
    paths = [path for axis in plan.base.to_dict().get("grid") or {} for path in axis_paths(axis)]
    for path in sorted(paths, key=setting_order):
        value = _at(tree, path)
        node = nested
        *sections, key = path.split(".")
        for section in sections:
            node = node.setdefault(section, {})
        node[key] = value
    direction = "max" if maximize else "min"
    header = (
        f"# chosen by suite tune: {direction} mean {objective} over seeds {plan.base.seeds},\n"
        f"# {len(plan.points)} of {grid_size} grid points; experiment '{plan.experiment}', parent run {parent_run_id}\n"
    )
    return header + yaml.safe_dump(nested, sort_keys=False, default_flow_style=False)


def run_tuning(
    plan: specs.LaunchPlan,
    tracking_uri: str,
    objective: str,
    maximize: bool,
    grid_size: int,
    command_line: str | None = None,
    **how: Any,
) -> Tuning:
    """Run ``plan`` on validation data, rank its points and log ``tuning.json`` on the parent run."""
    from suite.launcher import launch
    from suite.tracking import Tracker

    check_objective(objective)
    objective = metric_key(objective)  # valid.ndcg@10 is shown and ranked as valid.ndcg_at_10, as MLflow stores it
    result = launch(plan, tracking_uri, command_line=command_line, evaluation="valid", fail_fast=False, **how)
    frame = frame_from_children(result.children, plan, result.parent_run_id)
    ranking = rank_points(frame, objective, maximize, plan.base.seeds)
    points = dict(zip(frame["label"], children_points(result.children, plan)))
    fragment = spec_fragment(plan, points[ranking.iloc[0]["label"]], objective, maximize, result.parent_run_id, grid_size)
    tuning = Tuning(plan.experiment, result.parent_run_id, objective, maximize, ranking, fragment, result.failed)
    parent = Tracker(tracking_uri, result.parent_run_id)
    parent.log_dict(tuning.record, "tuning.json")
    parent.log_text(fragment, "tuned.yaml")
    return tuning


def render(tuning: Tuning) -> str:
    """The ranking as a Markdown table and the fragment to paste."""
    shown = tuning.ranking.copy()
    if shown["complete"].all():
        shown = shown.drop(columns="complete")
    else:
        shown["complete"] = shown["complete"].map({True: "yes", False: "no: cannot win"})
    if shown["seeds"].max() < 2:
        shown = shown.drop(columns="std")  # one seed has no spread to show
    table = shown.rename(columns={"mean": f"{tuning.objective} mean"}).to_markdown(index=False, floatfmt=".4g")
    return f"{table}\n\n{tuning.fragment}"


def _at(tree: dict[str, Any], path: str) -> Any:
    """The value at a dotted path of a resolved spec tree."""
    node: Any = tree
    for part in path.split("."):
        node = node[part]
    return node
