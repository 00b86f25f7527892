"""``suite tune``: validation-only objectives, equal budgets, the ranking and the spec fragment it prints."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from suite import spec as specs
from suite.cli import main
from suite.launcher import launch
from suite.results import frame_from_children
from suite.tune import rank_points, spec_fragment, tuning_plan


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def no_experiments(tracking_uri: str) -> bool:
    """Only MLflow's own Default experiment exists: nothing was launched."""
    return [e.name for e in MlflowClient(tracking_uri).search_experiments()] == ["Default"]


def test_an_objective_on_test_data_is_refused_before_any_run(toy_distribution, tracking_uri, toy_spec, tmp_path):
    result = invoke("tune", str(toy_spec), "-g", "train.lr=[0.01,0.05]", "--objective", "test.final_loss")
    assert result.exit_code == 2
    assert "--objective test.final_loss: tuning must choose on validation data" in result.output
    assert MlflowClient(tracking_uri).search_runs(["0"]) == [] and no_experiments(tracking_uri)


def test_tuning_needs_a_grid(toy_distribution, tracking_uri, toy_spec, tmp_path):
    result = invoke("tune", str(toy_spec), "--objective", "valid.final_loss")
    assert result.exit_code == 2 and "nothing to tune" in result.output
    assert no_experiments(tracking_uri)


def test_a_budget_samples_the_same_points_for_a_seed_in_grid_order(toy_distribution, toy_spec):
    grid = ["train.lr=[0.01,0.02,0.05]", "method.steps=[1,2,3,4]"]
    plan, size = tuning_plan(str(toy_spec), [], grid, budget=5, sample_seed=0, experiment=None)
    labels = [label for label, _ in plan.points]
    every = [label for label, _ in specs.plan(toy_spec, [], grid).points]
    assert size == 12 and len(labels) == 5 and plan.experiment == "toy-exp-tune"
    assert labels == [label for label in every if label in labels]  # grid order kept
    again, _ = tuning_plan(str(toy_spec), [], grid, budget=5, sample_seed=0, experiment="mine")
    assert [label for label, _ in again.points] == labels and again.experiment == "mine"
    samples = {tuple(label for label, _ in tuning_plan(str(toy_spec), [], grid, 5, seed, None)[0].points) for seed in range(6)}
    assert len(samples) > 1  # the seed decides the sample
    whole, _ = tuning_plan(str(toy_spec), [], grid, budget=50, sample_seed=0, experiment=None)
    assert len(whole.points) == 12


@pytest.mark.slow
def test_ranking_picks_the_best_mean_over_seeds_and_the_fragment_pastes_back(toy_distribution, tracking_uri, toy_spec):
    plan = specs.plan(toy_spec, ["seeds=[0,1]"], ["train.lr=[0.01,0.05]", "method.steps=[2,4]"])
    result = launch(plan, tracking_uri, fail_fast=False)
    frame = frame_from_children(result.children, plan, result.parent_run_id)

    ranking = rank_points(frame, "final_loss", maximize=False, seeds=[0, 1])

    client = MlflowClient(tracking_uri)
    losses: dict[tuple[str, str], list[float]] = {}
    for child in result.children:
        run = client.get_run(child.run_id)
        losses.setdefault((run.data.params["method.steps"], run.data.params["train.lr"]), []).append(run.data.metrics["final_loss"])
    means = {key: statistics.mean(values) for key, values in losses.items()}
    best = min(means, key=means.get)
    assert ranking["label"].iloc[0] == f"method.steps={best[0]} train.lr={best[1]}"
    assert ranking["mean"].tolist() == pytest.approx(sorted(means.values()))
    assert ranking["seeds"].tolist() == [2, 2, 2, 2] and ranking["rank"].tolist() == [1, 2, 3, 4]

    winner = next(point for label, point in plan.points if label == f"train.lr={best[1]} method.steps={best[0]}")
    fragment = spec_fragment(plan, winner, "final_loss", False, result.parent_run_id, grid_size=4)
    assert yaml.safe_load(fragment) == {"method": {"steps": int(best[0])}, "train": {"lr": float(best[1])}}
    assert f"parent run {result.parent_run_id}" in fragment and "experiment 'toy-exp'" in fragment

    frame.loc[frame["run_id"] == frame["run_id"].iloc[0], "status"] = "FAILED"  # one seed of one point lost
    incomplete = rank_points(frame, "final_loss", maximize=False, seeds=[0, 1])
    assert incomplete["label"].iloc[-1] == frame["label"].iloc[0] and not incomplete["complete"].iloc[-1]
    with pytest.raises(Exception, match="no run reported the objective 'valid.final_loss'; the runs logged: .*final_loss"):
        rank_points(frame, "valid.final_loss", maximize=False, seeds=[0, 1])


@pytest.mark.slow
def test_tune_runs_on_validation_and_records_the_sweep(toy_distribution, tracking_uri, toy_spec):
    """Needs the toy method to report valid.* metrics when ctx.evaluation == 'valid' (core's toy plugin)."""
    result = invoke("tune", str(toy_spec), "-q", "-g", "train.lr=[0.01,0.05,0.1]", "--objective", "valid.final_loss", "--minimize")
    assert result.exit_code == 0, result.output
    fragment = result.stdout[result.stdout.index("# chosen by suite tune") :]
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("toy-exp-tune")
    (parent,) = client.search_runs([experiment.experiment_id], "tags.`suite.kind` = 'parent'")
    kids = client.search_runs([experiment.experiment_id], "tags.`suite.kind` = 'child'")
    assert len(kids) == 6 and all("valid.final_loss" in kid.data.metrics for kid in kids)
    assert not any(name.startswith("test.") for kid in kids for name in kid.data.metrics)
    means = {}
    for kid in kids:
        means.setdefault(kid.data.params["train.lr"], []).append(kid.data.metrics["valid.final_loss"])
    best = min(means, key=lambda lr: statistics.mean(means[lr]))
    assert yaml.safe_load(fragment) == {"train": {"lr": float(best)}}
    assert parent.info.run_id in fragment
    record = json.loads(Path(client.download_artifacts(parent.info.run_id, "tuning.json")).read_text())
    assert record["objective"] == "valid.final_loss" and record["direction"] == "minimize"
    assert record["winner"]["label"] == f"train.lr={best}" and len(record["ranking"]) == 3


@pytest.mark.slow
def test_one_tuning_seed_shows_no_spread_column(toy_distribution, tracking_uri, toy_spec):
    grid = ["-o", "seeds=[0]", "-g", "train.lr=[0.01,0.05]"]
    result = invoke("tune", str(toy_spec), "-q", *grid, "--objective", "valid.final_loss", "--minimize")
    assert result.exit_code == 0, result.output
    header = next(line for line in result.stdout.splitlines() if line.startswith("| ") and "rank" in line)
    assert [cell.strip() for cell in header.strip("|").split("|")] == ["rank", "label", "valid.final_loss mean", "seeds"]
    assert "nan" not in result.stdout


@pytest.mark.slow
def test_the_fragment_of_a_joined_axis_names_each_path(toy_distribution, tracking_uri, toy_spec):
    tree = yaml.safe_load(toy_spec.read_text())
    tree["grid"] = {"method.steps, train.lr": [[1, 0.01], [8, 0.05]]}
    toy_spec.write_text(yaml.safe_dump(tree))
    result = invoke("tune", str(toy_spec), "-q", "--objective", "valid.final_loss", "--minimize")
    assert result.exit_code == 0, result.output
    fragment = yaml.safe_load(result.stdout[result.stdout.index("# chosen by suite tune") :])
    assert fragment in ({"method": {"steps": 1}, "train": {"lr": 0.01}}, {"method": {"steps": 8}, "train": {"lr": 0.05}})
