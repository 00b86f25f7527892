"""``suite export``: one CSV row per child run, from a real MLflow store of tiny toy launches, and the README tables made from it."""

from __future__ import annotations

import io
from importlib import metadata
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from suite import spec as specs
from suite.cli import main
from suite.export import read_results
from suite.launcher import launch
from suite.results import launch_results

pytestmark = pytest.mark.slow

SPEC = """\
experiment: toy-export
seeds: [0, 1, 2]
scenario: {name: toy-numbers, size: 64}
model: {name: toy-linear}
method: {name: toy-fit, steps: 3}
train: {lr: 0.05}
grid:
  method: [{name: toy-fit, steps: 2}, {name: toy-fit, steps: 4}]
report: {metrics: [final_loss]}
"""
SHORT, LONG = "method.steps=2", "method.steps=4"


def spec_file(folder: Path, text: str = SPEC) -> Path:
    path = folder / "toy-export.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def store(toy_distribution, tmp_path_factory) -> dict:
    """toy-export: 2 points x seeds 0-2, then seed 1 relaunched; the relaunched run of the short point marked FAILED."""
    folder = tmp_path_factory.mktemp("export-store")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    launch(specs.plan(spec_file(folder)), uri)
    first = launch_results("toy-export", uri)
    launch(specs.plan(spec_file(folder), ["seeds=[1]"]), uri)
    second = launch_results("toy-export", uri)  # the latest launch: seed 1 of both points
    client = MlflowClient(uri)
    failed = second[second["label"] == SHORT]["run_id"].item()
    client.set_terminated(failed, "FAILED")
    expected = {  # (label, seed) -> the run the export must keep
        (row.label, int(row.seed)): row.run_id for row in first.itertuples()
    }
    expected[(LONG, 1)] = second[second["label"] == LONG]["run_id"].item()  # the latest FINISHED run
    return {"uri": uri, "client": client, "expected": expected, "failed": failed, "folder": folder}


def export(store: dict, out: Path, *args: str):
    return CliRunner().invoke(main, ["export", "toy-export", "--out", str(out), "--tracking-uri", store["uri"], *args])


def test_one_row_per_point_and_seed_with_every_metric_wall_time_commit_version_and_settings(store, tmp_path):
    out = tmp_path / "results" / "toy.csv"
    result = export(store, out)
    assert result.exit_code == 0, result.output
    assert "6 row(s), 6 from the store" in result.output
    rows = read_results(out)
    columns = list(rows.columns)
    assert columns[:4] == ["experiment", "label", "seed", "status"]
    metrics = columns[4 : columns.index("wall_seconds")]
    assert metrics == sorted(metrics) and {"final_loss", "weight_norm", "loss"} <= set(metrics)
    assert columns[columns.index("wall_seconds") :][:5] == ["wall_seconds", "git_commit", "suite_version", "run_id", "point"]
    assert {"params.method.name", "params.method.steps", "params.train.lr", "params.scenario.size"} <= set(columns)
    assert not any(c.startswith(("params.seed", "params.derived", "params.report", "params.grid")) for c in columns)
    assert rows[["label", "seed"]].values.tolist() == [[label, str(s)] for label in (SHORT, LONG) for s in range(3)]  # sorted
    assert dict(zip(zip(rows["label"], rows["seed"].astype(int)), rows["run_id"])) == store["expected"]
    assert store["failed"] not in set(rows["run_id"]) and set(rows["status"]) == {"FINISHED"}
    for row in rows.itertuples():
        run = store["client"].get_run(row.run_id)
        assert float(row.final_loss) == pytest.approx(run.data.metrics["final_loss"], rel=1e-5)
        assert row.final_loss == format(run.data.metrics["final_loss"], ".6g")  # fixed precision: small diffs
        assert 0 < float(row.wall_seconds) <= (run.info.end_time - run.info.start_time) / 1000 + 1e-3
        assert row.git_commit == run.data.tags.get("mlflow.source.git.commit", "")
        assert row.point == run.data.tags["suite.point"]
    assert set(rows["suite_version"]) == {metadata.version("cl-suite")}
    assert rows["params.method.steps"].tolist() == ["2"] * 3 + ["4"] * 3


def test_labels_and_numbers_are_those_suite_report_gives(store, tmp_path):
    out = tmp_path / "toy.csv"
    assert export(store, out).exit_code == 0
    rows = read_results(out)
    report = CliRunner().invoke(
        main, ["report", "toy-export", "--launch", "all", "--format", "csv", "-m", "final_loss", "--tracking-uri", store["uri"]]
    )
    table = pd.read_csv(io.StringIO(report.stdout)).set_index("label")
    assert set(table.index) == set(rows["label"])
    loss = rows.assign(final_loss=rows["final_loss"].astype(float)).groupby("label")["final_loss"]
    same_runs = [label for label, n in loss.size().items() if table.loc[label, "n"] == n]  # seed 1 of the long point ran twice
    assert SHORT in same_runs  # its relaunch FAILED: both count its 3 finished runs
    for label in same_runs:
        assert loss.mean()[label] == pytest.approx(table.loc[label, "final_loss mean"], rel=1e-5)
        assert loss.std()[label] == pytest.approx(table.loc[label, "final_loss std"], rel=1e-4)


def test_exporting_again_gives_the_same_bytes(store, tmp_path):
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    assert export(store, first).exit_code == 0 and export(store, second).exit_code == 0
    assert first.read_bytes() == second.read_bytes()


def test_append_keeps_rows_of_another_store_and_new_seeds_join_their_points(store, tmp_path, toy_distribution):
    out = tmp_path / "toy.csv"
    assert export(store, out).exit_code == 0
    other = {**store, "uri": f"sqlite:///{tmp_path / 'other.db'}"}
    launch(specs.plan(spec_file(tmp_path), ["seeds=[3, 1]"]), other["uri"])  # a new seed, and seed 1 again
    replaced = launch_results("toy-export", other["uri"])
    newer = dict(zip(zip(replaced["label"], replaced["seed"].astype(int)), replaced["run_id"]))
    client = MlflowClient(other["uri"])
    client.set_terminated(newer[(LONG, 3)], "FAILED")  # no finished run of this seed: the failed one is the row
    client.update_run(newer[(SHORT, 3)], status="RUNNING")  # still running: no row yet
    result = export(other, out, "--append")
    assert result.exit_code == 0, result.output
    assert "7 row(s), 3 from the store, 4 kept from the file" in result.output
    rows = read_results(out)
    expected = [[SHORT, "0"], [SHORT, "1"], [SHORT, "2"], [LONG, "0"], [LONG, "1"], [LONG, "2"], [LONG, "3"]]
    assert rows[["label", "seed"]].values.tolist() == expected
    by_key = dict(zip(zip(rows["label"], rows["seed"].astype(int)), zip(rows["run_id"], rows["status"])))
    assert by_key[(SHORT, 1)] == (newer[(SHORT, 1)], "FINISHED")  # the store's run replaces the file's
    assert by_key[(SHORT, 0)] == (store["expected"][(SHORT, 0)], "FINISHED")  # kept from the file
    assert by_key[(LONG, 3)] == (newer[(LONG, 3)], "FAILED")
    assert export(other, out).exit_code == 0  # without --append the file is the store's rows only
    assert len(read_results(out)) == 3


def test_readme_table_from_the_exported_csv_pairs_by_seed(store, tmp_path):
    from suite.readme_tables import Block, render_block

    (tmp_path / "results").mkdir()
    assert export(store, tmp_path / "results" / "toy.csv").exit_code == 0
    block = Block.parse(f'results/toy.csv metrics=final_loss,wall_seconds paired=final_loss baseline="{SHORT}"', "README")
    text = render_block(block, tmp_path)
    lines = [line for line in text.splitlines() if line.startswith("|") and not set(line) <= set("|:- ")]
    header, short, long = ([cell.strip() for cell in line.strip("|").split("|")] for line in lines)
    assert header == ["label", "n", "final_loss", "wall_seconds", f"final_loss Δ vs {SHORT} [95% CI]"]
    assert short[:2] == [SHORT, "3"] and short[-1] == "baseline"
    rows = read_results(tmp_path / "results" / "toy.csv")
    loss = rows.assign(final_loss=rows["final_loss"].astype(float)).pivot(index="seed", columns="label", values="final_loss")
    difference = (loss[LONG] - loss[SHORT]).mean()
    shown = float(long[-1].split("[")[0])
    assert shown == pytest.approx(difference, abs=10 ** -(len(str(shown).split(".")[1])) + 1e-12)


def test_unknown_experiment_or_no_runs_is_exit_2_and_writes_nothing(store, tmp_path):
    out = tmp_path / "none.csv"
    result = CliRunner().invoke(main, ["export", "nope", "--out", str(out), "--tracking-uri", store["uri"]])
    assert result.exit_code == 2 and "no experiment named 'nope'" in result.output and not out.exists()
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    result = export(store, bad, "--append")
    assert result.exit_code == 2 and "not a results CSV written by `suite export`" in result.output


def test_a_sequential_run_gets_epochs_to_its_best_validation_score_and_epochs_run(tracking_uri, tmp_path):
    from sequential_data import write_tiny_dataset
    from test_sequential_model_pins import write_spec

    from suite import export as export_module
    from suite.sequential.pipeline import EPOCH_VALID

    assert export_module.EPOCH_VALID == EPOCH_VALID
    spec = write_spec(tmp_path, "sasrec-fused", write_tiny_dataset(tmp_path / "data"))
    launch(specs.plan(spec, ["train.epochs=4"]), tracking_uri)
    out = tmp_path / "seq.csv"
    result = CliRunner().invoke(main, ["export", "pin-sasrec-fused", "--out", str(out), "--tracking-uri", tracking_uri])
    assert result.exit_code == 0, result.output
    rows = read_results(out)
    assert len(rows) == 1
    row = rows.iloc[0]
    client = MlflowClient(tracking_uri)
    scores = [entry.value for entry in sorted(client.get_metric_history(row["run_id"], "valid_epoch.ndcg_at_10"), key=lambda e: e.step)]
    assert len(scores) == 4 and row["epochs_run"] == "4"
    best = int(row["epochs_to_best"])
    assert scores[best - 1] == pytest.approx(float(row["best_valid.ndcg_at_10"]), rel=1e-5)  # the epoch RecBole kept as best
    assert all(score < scores[best - 1] for score in scores[: best - 1])
    assert float(row["wall_seconds"]) > 0 and float(row["test.ndcg_at_10"]) > 0


def test_a_resumed_sequential_run_without_train_seconds_counts_its_segments_not_the_wait(tracking_uri):
    """Before ``train_seconds``, a resumed process restarted ``train.elapsed_s`` from 0: the wall time is the
    segments' sum (20 s + 15 s), not the hour between the kill and the resume (MLflow's end minus start)."""
    from suite.export import ELAPSED, run_row, segments_seconds

    client = MlflowClient(tracking_uri)
    run_id = client.create_run(client.create_experiment("resumed"), start_time=1_000_000).info.run_id
    first, second = 1_000_000, 5_000_000  # the processes' start times, in ms: an hour's wait between them
    for step, (started, elapsed) in enumerate([(first, 10), (first, 20), (second, 5), (second, 15)]):
        client.log_metric(run_id, ELAPSED, elapsed, timestamp=started + elapsed * 1000, step=step)
    client.set_terminated(run_id, "FINISHED", end_time=second + 20_000)
    row = run_row("resumed", "", client.get_run(run_id), client)
    assert float(row["wall_seconds"]) == 35
    one_process = [Metric(ELAPSED, value, first + 1000 * value, step) for step, value in enumerate([10, 20, 30])]
    assert segments_seconds(one_process) == 30
    assert segments_seconds([]) is None
    client.log_metric(run_id, "train_seconds", 40.0)
    assert float(run_row("resumed", "", client.get_run(run_id), client)["wall_seconds"]) == 40  # the run's own count first
