"""Reports through the real MLflow client: the notebook DataFrame, ``suite report`` formats, the paired view.

One store per module holds a few tiny toy launches (seconds each); tests read it back.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import re
import statistics
import warnings
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from suite import spec as specs
from suite.cli import main
from suite.latex import readable_label
from suite.launcher import launch
from suite.plots import curve_figure
from suite.recorded_settings import with_current_defaults
from suite.report import log_launch_results
from suite.results import children_frame, launch_results, metric_histories, point_labels, resolve_metric
from suite.results_table import column_decimals, paired_difference, results_table
from suite.tracking import Tracker

pytestmark = pytest.mark.slow

GRID_SPEC = """\
experiment: toy-grid
seeds: [0, 1, 2]
scenario: {name: toy-numbers, size: 64}
model: {name: toy-linear}
method: {name: toy-fit, steps: 3}
train: {lr: 0.05}
grid:
  method: [{name: toy-fit, steps: 2}, {name: toy-fit, steps: 4}]
report: {metrics: [weight_norm, final_loss]}
"""
BASELINE = "method.steps=2"
# Hand-chosen per-seed values for the paired view (logged onto the real child runs).
ACC = {BASELINE: [80.0, 82.0, 78.0], "method.steps=4": [82.0, 86.0, 84.0]}  # differences 2, 4, 6
PARTIAL = {BASELINE: [10.0, 20.0], "method.steps=4": [13.0, 21.0, 99.0]}  # baseline lacks seed 2: differences 3, 1


def spec_file(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def store(toy_distribution, tmp_path_factory) -> str:
    """toy-grid (2 points that a 'method' axis labels alike, 3 seeds), toy-single (1 seed), toy-relaunch (launched twice)."""
    folder = tmp_path_factory.mktemp("report-store")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    launch(specs.plan(spec_file(folder, "grid", GRID_SPEC)), uri)
    single = GRID_SPEC.replace("toy-grid", "toy-single").replace("seeds: [0, 1, 2]", "seeds: [0]").split("grid:")[0]
    launch(specs.plan(spec_file(folder, "single", single)), uri)
    relaunch = spec_file(folder, "relaunch", single.replace("toy-single", "toy-relaunch"))
    launch(specs.plan(relaunch), uri)
    launch(specs.plan(relaunch, ["seeds=[0,1,2]"]), uri)
    client = MlflowClient(uri)
    grid = launch_results("toy-grid", uri)
    for row in grid.itertuples():
        client.log_metric(row.run_id, "acc", ACC[row.label][row.seed])
        if row.seed < len(PARTIAL[row.label]):
            client.log_metric(row.run_id, "partial", PARTIAL[row.label][row.seed])
        client.log_metric(row.run_id, "test.hit_at_10", 0.25 + 0.1 * row.seed)  # how MLflow stores test.hit@10
    return uri


def children(store: str, experiment: str) -> list:
    client = MlflowClient(store)
    return client.search_runs([client.get_experiment_by_name(experiment).experiment_id], "tags.`suite.kind` = 'child'")


def report(store: str, *args: str):
    return CliRunner().invoke(main, ["report", *args, "--tracking-uri", store])


def markdown_rows(output: str) -> list[list[str]]:
    """The cells of a pipe table (header first, rule left out)."""
    lines = [line for line in output.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines if not set(line) <= set("|:- ")]


def test_launch_results_has_one_row_per_child_with_params_metrics_and_labels(store):
    frame = launch_results("toy-grid", store)
    assert len(frame) == 6 and set(frame["status"]) == {"FINISHED"}
    assert sorted(frame["seed"].tolist()) == [0, 0, 1, 1, 2, 2]
    assert set(frame["point"]) == {"method=toy-fit steps=2", "method=toy-fit steps=4"}  # the launch labels name the difference...
    assert frame.groupby("label")["method.steps"].unique().to_dict() == {BASELINE: [2], "method.steps=4": [4]}  # ...so do these
    assert frame["train.lr"].tolist() == [0.05] * 6  # params typed back from MLflow's strings
    assert {"final_loss", "weight_norm", "loss", "test.hit_at_10"} <= set(frame.attrs["metrics"])
    assert "test.hit@10" not in frame.columns  # one name: MLflow's
    direct = {run.info.run_id: run.data.metrics["final_loss"] for run in children(store, "toy-grid")}
    assert frame.set_index("run_id")["final_loss"].to_dict() == pytest.approx(direct)


def test_report_defaults_to_the_spec_metrics_in_order_one_precision_per_column(store):
    result = report(store, "toy-grid")
    assert result.exit_code == 0, result.output
    header, *rows = markdown_rows(result.output)
    assert header == ["label", "n", "weight_norm", "final_loss"]
    assert [row[:2] for row in rows] == [[BASELINE, "3"], ["method.steps=4", "3"]]
    for column in (2, 3):
        decimals = {len(number.split(".")[1]) for row in rows for number in re.findall(r"\d+\.\d+", row[column])}
        assert len(decimals) == 1, f"column {header[column]} mixes precisions: {rows}"
    assert "3 seeds per row (seeds 0, 1, 2)" in result.output


def test_csv_reads_back_with_the_mean_and_std_mlflow_holds(store):
    result = report(store, "toy-grid", "--format", "csv", "-m", "final_loss", "-m", "test.hit@10")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(io.StringIO(result.stdout)).set_index("label")
    by_steps = {
        steps: [r.data.metrics["final_loss"] for r in children(store, "toy-grid") if r.data.params["method.steps"] == steps]
        for steps in "24"
    }
    assert table.loc[BASELINE, "final_loss mean"] == pytest.approx(statistics.mean(by_steps["2"]))
    assert table.loc["method.steps=4", "final_loss std"] == pytest.approx(statistics.stdev(by_steps["4"]))
    assert table.loc[BASELINE, "test.hit_at_10 mean"] == pytest.approx(0.35)
    assert table["n"].tolist() == [3, 3]


def test_latex_is_a_booktabs_table_to_paste_with_readable_labels_escaped_headers_and_right_aligned_numbers(store):
    result = report(store, "toy-grid", "--format", "latex", "-m", "test.hit@10", "-m", "final_loss", "--baseline", BASELINE)
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert text.startswith("% needs \\usepackage{booktabs}")  # the one package it needs, said where it is pasted
    assert r"\begin{tabular}{lrrrrr}" in text  # label left, n and every number column right
    assert all(rule in text for rule in (r"\toprule", r"\midrule", r"\bottomrule"))
    header = text.split(r"\toprule")[1].split(r"\midrule")[0].strip()
    assert [cell.strip() for cell in header.removesuffix(r"\\").split("&")] == [
        "label",
        "n",
        r"test.hit\_at\_10",
        r"final\_loss",
        r"test.hit\_at\_10 $\Delta$ vs steps=2 [95\% CI]",
        r"final\_loss $\Delta$ vs steps=2 [95\% CI]",
    ]
    body = text.split(r"\midrule")[1].split(r"\bottomrule")[0].strip().splitlines()
    assert [line.split("&")[0].strip() for line in body] == ["steps=2", "steps=4"]  # not method.steps=2
    assert all(r"$\pm$" in line and line.endswith(r"\\") for line in body)
    assert "±" not in text and "Δ" not in text and "illustration" not in text  # notes go to stderr
    assert not re.search(r"(?<!\\)[_%]", text.split("\n", 1)[1])  # every underscore and percent sign escaped


def test_readable_labels_name_the_method_and_put_its_settings_in_parentheses():
    assert readable_label("method=replay method.replay.size=100") == "replay (size=100)"
    assert readable_label("method=replay") == "replay"
    assert readable_label("method.steps=2 train.lr=0.01") == "steps=2, lr=0.01"
    assert readable_label("tuned replay") == "tuned replay"  # a spec's own point name stays


@pytest.mark.parametrize("spelling", ["test.hit@10", "test.hit_at_10", "HIT@10", "hit@10", "hit_at_10", "Test.Hit@10"])
def test_every_spelling_of_a_metric_names_the_one_column(store, spelling):
    result = report(store, "toy-grid", "--format", "csv", "-m", spelling)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(io.StringIO(result.stdout)).set_index("label")
    assert list(table.columns[:2]) == ["n", "test.hit_at_10 mean"]  # one name, the one the dashboard shows
    assert table.loc[BASELINE, "test.hit_at_10 mean"] == pytest.approx(0.35)


def test_an_unprefixed_metric_means_test_before_valid():
    known = ["valid.ndcg_at_10", "test.ndcg_at_10", "valid_epoch.mrr_at_10", "loss"]
    assert resolve_metric("NDCG@10", known) == "test.ndcg_at_10"
    assert resolve_metric("valid.NDCG@10", known) == "valid.ndcg_at_10"
    assert resolve_metric("mrr@10", known) == "valid_epoch.mrr_at_10"  # the one metric that ends with it
    assert resolve_metric("hit@10", known) is None
    assert resolve_metric("Loss", known) == "loss"


def test_unknown_metric_is_an_error_naming_the_known_ones(store):
    result = report(store, "toy-grid", "-m", "final_los")
    assert result.exit_code == 2
    assert "unknown metric 'final_los'; the runs logged:" in result.output and "final_loss" in result.output


def test_a_single_seed_shows_no_spread_and_says_it_is_an_illustration(store):
    result = report(store, "toy-single")
    assert result.exit_code == 0, result.output
    _, row = markdown_rows(result.output)
    assert row[1] == "1" and not any("±" in cell for cell in row)
    assert "one seed is an illustration, not a result" in result.output


def test_several_experiments_in_one_table(store):
    result = report(store, "toy-grid", "toy-single", "-m", "final_loss")
    assert result.exit_code == 0, result.output
    header, *rows = markdown_rows(result.output)
    assert header[:3] == ["experiment", "label", "n"]
    assert [row[:3] for row in rows] == [
        ["toy-grid", BASELINE, "3"],
        ["toy-grid", "method.steps=4", "3"],
        ["toy-single", "method.steps=3", "1"],
    ]


def test_paired_difference_is_a_t_interval_on_a_hand_computed_case():
    # differences 2, 4, 6: mean 4, sd 2, standard error 2 / sqrt(3) = 1.154701;
    # t(0.975, df=2) = 4.302653 (t table), half width 4.302653 * 1.154701 = 4.968275
    difference = paired_difference([2.0, 4.0, 6.0])
    assert (difference.mean, difference.n) == (4.0, 3)
    assert difference.low == pytest.approx(4 - 4.968275, abs=1e-6) and difference.high == pytest.approx(4 + 4.968275, abs=1e-6)
    one = paired_difference([3.0])
    assert one.mean == 3.0 and math.isnan(one.low) and one.n == 1


def test_report_pairs_methods_by_seed_against_the_baseline(store):
    result = report(store, "toy-grid", "-m", "acc", "-m", "partial", "--baseline", BASELINE)
    assert result.exit_code == 0, result.output
    header, base, other = markdown_rows(result.output)
    assert header == ["label", "n", "acc", "partial", f"acc Δ vs {BASELINE} [95% CI]", f"partial Δ vs {BASELINE} [95% CI]"]
    assert base[2:] == ["80.0 ± 2.0", "15.0 ± 7.1 (n=2)", "baseline", "baseline"]
    assert other[4] == "+4.0 [-1.0, +9.0] (n=3)"  # the hand-computed case above
    # only seeds 0 and 1 pair: differences 3, 1: mean 2, standard error 1, t(0.975, df=1) = 12.706205
    numbers = pd.read_csv(io.StringIO(report(store, "toy-grid", "-m", "partial", "--baseline", BASELINE, "--format", "csv").stdout))
    paired = numbers.set_index("label").loc["method.steps=4"]
    assert paired[f"partial Δ vs {BASELINE}"] == pytest.approx(2.0) and paired["partial Δ n"] == 2
    assert paired["partial Δ low"] == pytest.approx(2 - 12.706205, abs=1e-5) and paired["partial Δ high"] == pytest.approx(
        2 + 12.706205, abs=1e-5
    )


def test_the_paired_view_of_launches_seed_by_seed_warns_nothing():
    """Runs of one launch per seed (seed-major) in a grid's order once made pandas warn for every row it paired."""
    labels = ["method=finetune", "method=joint", "method=replay", "method=ewc", "method=agem"]
    frame = pd.DataFrame(
        [
            {"experiment": "e", "label": label, "point": label, "seed": seed, "status": "FINISHED", "acc": 10.0 * rank + seed}
            for seed in (0, 1, 2)
            for rank, label in enumerate(labels)
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = results_table(frame, ["acc"], "method=replay")
    assert table.paired[(("e", "method=agem"), "acc")].mean == pytest.approx(20.0)
    assert table.paired[(("e", "method=finetune"), "acc")].mean == pytest.approx(-20.0)


def test_an_unknown_baseline_names_the_rows(store):
    result = report(store, "toy-grid", "--baseline", "method.steps=9")
    assert result.exit_code == 2
    assert f"baseline 'method.steps=9' is not a row of this table; rows: {BASELINE} (toy-grid); method.steps=4 (toy-grid)" in result.output


def test_report_takes_the_latest_launch_unless_told_otherwise(store):
    def counts(*args: str) -> list[str]:
        result = report(store, "toy-relaunch", *args)
        assert result.exit_code == 0, result.output
        return [row[1] for row in markdown_rows(result.output)[1:]]

    assert counts() == ["3"]
    assert counts("--launch", "all") == ["3"]  # same settings: both launches pool, seed 0 once (its latest run)
    assert counts("--launch", "all", "--repeats", "all") == ["4"]
    parents = MlflowClient(store).search_runs(
        [MlflowClient(store).get_experiment_by_name("toy-relaunch").experiment_id],
        "tags.`suite.kind` = 'parent'",
        order_by=["attributes.start_time ASC"],
    )
    assert counts("--launch", parents[0].info.run_id) == ["1"]
    wrong = report(store, "toy-relaunch", "--launch", "abc")
    assert wrong.exit_code == 2 and "--launch abc: not a parent run of experiment 'toy-relaunch'" in wrong.output
    missing = report(store, "nope")
    assert missing.exit_code == 2 and "no experiment named 'nope'" in missing.output and "toy-grid" in missing.output


def test_a_seed_run_twice_counts_once_in_the_means_and_the_pairs(toy_distribution, tmp_path):
    """Two launches of seed 0: the table pools one run per (row, seed), says so, and a flag picks which."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec = spec_file(tmp_path, "twice", GRID_SPEC.replace("toy-grid", "toy-twice").replace("seeds: [0, 1, 2]", "seeds: [0]"))
    client = MlflowClient(uri)
    for acc in ({BASELINE: 10.0, "method.steps=4": 20.0}, {BASELINE: 30.0, "method.steps=4": 50.0}):  # first, then latest launch
        result = launch(specs.plan(spec), uri)
        for row in launch_results("toy-twice", uri).itertuples():
            if row.parent_run_id == result.parent_run_id:
                client.log_metric(row.run_id, "acc", acc[row.label])

    def table(*args: str) -> tuple[pd.DataFrame, str]:
        arguments = ["toy-twice", "--launch", "all", "-m", "acc", "--baseline", BASELINE, "--format", "csv", *args]
        result = CliRunner().invoke(main, ["report", *arguments, "--tracking-uri", uri])
        assert result.exit_code == 0, result.output
        return pd.read_csv(io.StringIO(result.stdout)).set_index("label"), result.stderr

    for args, (base, other) in {(): (30.0, 50.0), ("--repeats", "latest"): (30.0, 50.0), ("--repeats", "first"): (10.0, 20.0)}.items():
        numbers, notes = table(*args)
        assert numbers["n"].tolist() == [1, 1] and numbers["acc mean"].tolist() == [base, other]
        assert numbers.loc["method.steps=4", f"acc Δ vs {BASELINE}"] == other - base and numbers.loc["method.steps=4", "acc Δ n"] == 1
        assert "2 repeated run(s) of a seed in the same row left out" in notes and "1 seed per row (seeds 0)" in notes
    numbers, notes = table("--repeats", "all")
    assert numbers["n"].tolist() == [2, 2] and numbers["acc mean"].tolist() == [20.0, 35.0]
    paired = numbers.loc["method.steps=4"]
    assert paired[f"acc Δ vs {BASELINE}"] == 15.0 and paired["acc Δ n"] == 1  # one pair: seed 0, its runs averaged
    assert "2 run(s) repeat a seed of their row and are counted as samples (--repeats all)" in notes


def test_group_by_relabels_rows_by_a_param(store):
    result = report(store, "toy-grid", "--group-by", "method.steps", "-m", "final_loss")
    assert [row[0] for row in markdown_rows(result.output)[1:]] == ["method.steps=2", "method.steps=4"]
    assert report(store, "toy-grid", "--group-by", "method.stepz").exit_code == 2


def test_column_precision_follows_the_largest_value():
    assert column_decimals(pd.Series([81.62, 9.1])) == 1
    assert column_decimals(pd.Series([0.0527, 0.031])) == 4
    assert column_decimals(pd.Series([1234.0, float("nan")])) == 0
    assert column_decimals(pd.Series([0.0, 0.0])) == 2


def with_curve(plan: specs.LaunchPlan, metric: str) -> specs.LaunchPlan:
    """The plan with every point's method declaring ``metric`` as its curve (the toy logs 'loss' per step)."""
    points = [
        (label, dataclasses.replace(point, method=dataclasses.replace(point.method, curve_metric=metric))) for label, point in plan.points
    ]
    return dataclasses.replace(plan, points=points)


def test_log_launch_results_logs_table_paired_view_and_curve_on_the_parent(store, tmp_path):
    grid = GRID_SPEC.replace("toy-grid", "toy-logged").replace("seeds: [0, 1, 2]", "seeds: [0, 1]")
    grid = grid.replace("report:", "  method.fail_at_step: [null, 3]\nreport:")  # steps=4 points fail at step 3; steps=2 never reach it
    plan = with_curve(specs.plan(spec_file(tmp_path, "logged", grid)), "loss")
    baseline = "method.fail_at_step=None method.steps=2"  # labels list differing keys in MLflow's (alphabetical) order
    plan.base.tree["report"]["baseline"] = baseline  # what `report: {baseline: ...}` resolves to once the spec schema has the key
    result = launch(plan, store, fail_fast=False)
    parent = Tracker(store, result.parent_run_id)

    text = log_launch_results(parent, result.children, plan)

    folder = tmp_path / "artifacts"
    records = json.loads(parent.download_artifact("results.json", folder).read_text())
    assert [(r["label"], r["seed"], r["error"] is None) for r in records] == [
        (baseline, 0, True),
        (baseline, 1, True),
        ("method.fail_at_step=3 method.steps=2", 0, True),
        ("method.fail_at_step=3 method.steps=2", 1, True),
        ("method.fail_at_step=None method.steps=4", 0, True),
        ("method.fail_at_step=None method.steps=4", 1, True),
        ("method.fail_at_step=3 method.steps=4", 0, False),
        ("method.fail_at_step=3 method.steps=4", 1, False),
    ]
    assert records[0]["summary"]["final_loss"] == MlflowClient(store).get_run(records[0]["run_id"]).data.metrics["final_loss"]
    assert parent.download_artifact("results.md", folder).read_text().strip() == text.strip()
    header, *rows = markdown_rows(text)
    assert header[-1] == f"final_loss Δ vs {baseline} [95% CI]" and len(rows) == 3
    assert "2 of 8 runs failed: method.fail_at_step=3 method.steps=4 seed=0: RuntimeError: toy method failed at step 3" in text
    assert "2 seeds per row (seeds 0, 1)" in text
    assert parent.download_artifact("loss.png", folder) is not None
    baseline_runs = [r["run_id"] for r in records if r["label"] == baseline]
    client = MlflowClient(store)
    logged = client.get_run(result.parent_run_id).data
    expected = statistics.mean(client.get_run(run_id).data.metrics["final_loss"] for run_id in baseline_runs)
    assert logged.metrics["final_loss"] == pytest.approx(expected)  # the parent's row in the runs table: the baseline's mean
    assert logged.metrics["runs_finished"] == 6 and logged.metrics["runs_failed"] == 2
    assert logged.tags["suite.summary_row"] == baseline


def test_curve_figure_draws_the_mean_and_std_over_seeds_of_each_point(store):
    frame = launch_results("toy-grid", store)
    histories = metric_histories(MlflowClient(store), frame, "loss")
    figure = curve_figure(histories, "loss", title="toy-grid: loss after each stage")
    axes = figure.axes[0]
    lines = {line.get_label(): line for line in axes.get_lines()}
    assert set(lines) == {f"{BASELINE} (3 seeds)", "method.steps=4 (3 seeds)"}
    client = MlflowClient(store)
    expected = [
        statistics.mean(next(m.value for m in client.get_metric_history(run_id, "loss") if m.step == 1) for run_id in ids)
        for ids in [frame.loc[frame["label"] == BASELINE, "run_id"]]
    ]
    assert list(lines[f"{BASELINE} (3 seeds)"].get_xdata()) == [0, 1]
    assert lines[f"{BASELINE} (3 seeds)"].get_ydata()[1] == pytest.approx(expected[0])
    assert len(axes.collections) == 2  # one std band per point
    assert axes.get_xlabel() == "stage (step)" and axes.get_ylabel() == "loss" and axes.get_title().startswith("toy-grid: loss")


def test_labels_leave_out_settings_that_ride_along_with_the_method():
    """Each method with its own tuned lr: the lr tells no points apart beyond the method, so it stays out of the label."""
    settings = [
        {"method.name": "finetune", "train.lr": 0.001},
        {"method.name": "replay", "method.replay.size": 0.01, "train.lr": 0.001},
        {"method.name": "coconut", "method.replay.size": 0.01, "train.lr": 0.0005},
        {"method.name": "coconut", "method.replay.size": 0.02, "train.lr": 0.0005},
    ]
    assert point_labels(settings, ["a", "b", "c", "d"]) == [
        "method=finetune",
        "method=replay method.replay.size=0.01",
        "method=coconut method.replay.size=0.01",
        "method=coconut method.replay.size=0.02",
    ]
    lr_only = [{"method.name": "replay", "train.lr": 0.001}, {"method.name": "replay", "train.lr": 0.002}]
    assert point_labels(lr_only, ["a", "b"]) == ["train.lr=0.001", "train.lr=0.002"]


def test_what_a_run_derives_from_its_seed_does_not_split_a_point():
    """Each seed draws its own class order (logged as derived.class_order): the seeds still pool into one row."""
    rows = [
        {
            "point": "method=replay",
            "seed": seed,
            "params": {"method.name": "replay", "derived.class_order": order},
            "metrics": {"avg_acc": 60.0 + seed},
        }
        for seed, order in enumerate([["a", "b"], ["b", "a"]])
    ]
    frame = children_frame(rows)
    assert frame["label"].tolist() == ["method=replay", "method=replay"]
    assert frame["derived.class_order"].tolist() == [["a", "b"], ["b", "a"]]  # still a column for notebooks


def test_labels_are_made_of_spec_settings_not_of_what_a_run_measured():
    """A run that ended before logging ``recbole.flops`` must not turn every label into a flops label."""
    rows = [
        {
            "experiment": "e",
            "point": point,
            "seed": 0,
            "status": status,
            "run_id": f"{point}{status}",
            "parent_run_id": "p",
            "params": params,
            "metrics": {},
        }
        for point, status, params in [
            ("model=a", "FINISHED", {"model.name": "a", "recbole.flops": 1.0}),
            ("model=b", "FINISHED", {"model.name": "b", "recbole.flops": 2.0}),
            ("model=b", "KILLED", {"model.name": "b"}),
        ]
    ]
    assert list(children_frame(rows)["label"]) == ["model=a", "model=b", "model=b"]


def test_a_run_older_than_an_option_pools_with_new_runs_of_its_default():
    """COCONUT runs logged before ``nspt.variant`` existed ran as its default (infonce): they share its row, not dcl's."""
    old = {"method.name": "coconut", "method.nspt.weight": 0.3, "method.mm.weight": 0.3}
    new = {**old, "method.nspt.variant": "infonce", "method.mm.variant": "infonce"}
    dcl = {**new, "method.nspt.variant": "dcl"}
    replay = {"method.name": "replay", "method.replay.size": 0.01}
    rows = [
        {"point": "p", "seed": seed, "params": params, "metrics": {}}
        for seed, params in enumerate([old, new, dcl, replay, {"method.name": "no-longer-installed", "method.x": 1}])
    ]
    assert list(children_frame(rows)["label"]) == [
        "method=coconut method.nspt.variant=infonce",
        "method=coconut method.nspt.variant=infonce",
        "method=coconut method.nspt.variant=dcl",
        "method=replay",
        "method=no-longer-installed",
    ]
    assert not any(key.startswith("method.nspt") for key in with_current_defaults(replay))  # only the run's own method's options
    assert with_current_defaults({"method.name": "no-longer-installed"}) == {"method.name": "no-longer-installed"}
    assert children_frame(rows)["method.nspt.variant"].isna().tolist() == [True, False, False, True, True]  # columns: as recorded
