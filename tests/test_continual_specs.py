"""The continual run specs in runs/ validate, and the paper settings fail clearly without their corpus."""

import re
from pathlib import Path

import pytest
from continual_runs import suite_methods

from suite import spec
from suite.cli import main
from suite.errors import SuiteError

pytest.importorskip("scenarios.slu.entries")

RUNS = Path(__file__).resolve().parents[1] / "runs"
CONTINUAL = sorted([*RUNS.glob("spoken-*.yaml"), *RUNS.glob("coconut-*.yaml"), RUNS / "quickstart.yaml"])
METHODS = suite_methods("continual")


@pytest.mark.parametrize("path", CONTINUAL, ids=lambda p: p.name)
def test_spec_validates(path):
    plan = spec.plan(path, check_data=False)
    assert plan.base.method.family == "continual"
    for _, point in plan.points:
        assert point.model.name == "slu-seq2seq"


def test_one_spec_per_method_and_the_paper_settings_exist():
    for method in METHODS:
        assert spec.plan(RUNS / f"spoken-{method}.yaml").base.method.name == method
    for name in ("fsc-3", "fsc-6", "fsc-10", "slurp-3", "slurp-6"):
        assert (RUNS / f"coconut-{name}.yaml").exists()
    fsc10 = spec.plan(RUNS / "coconut-fsc-10.yaml", check_data=False).base
    assert fsc10.scenario_options.classes_per_exp == [4] + [3] * 9


def test_quickstart_compares_finetune_replay_coconut():
    plan = spec.plan(RUNS / "quickstart.yaml")
    assert [point.method.name for _, point in plan.points] == ["coconut", "replay", "finetune"]  # longest first: two cores busy
    assert plan.base.seeds == [0]


@pytest.mark.parametrize("name", ["coconut-fsc-6.yaml", "coconut-slurp-3.yaml"])
def test_paper_setting_without_corpus_raises_a_clear_error(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # data/fsc and data/slurp do not exist here
    point = spec.plan(RUNS / name, overrides=[f"scenario.root={tmp_path / 'absent'}"], check_data=False).base
    from suite.api import BuildContext

    with pytest.raises(SuiteError) as error:
        point.scenario.build(point.scenario_options, BuildContext(seed=0, cache_dir=tmp_path, run_dir=tmp_path))
    assert "absent" in str(error.value)


@pytest.mark.parametrize(
    "name, expected", [("coconut-fsc-3.yaml", "missing folder data/"), ("coconut-slurp-6.yaml", "missing train.jsonl")]
)
def test_paper_setting_without_corpus_stops_before_any_mlflow_run(name, expected, tracking_uri, tmp_path):
    import mlflow
    from click.testing import CliRunner

    corpus = tmp_path / "partial"
    corpus.mkdir()
    result = CliRunner().invoke(main, ["run", str(RUNS / name), "-q", "-o", f"scenario.root={corpus}"])
    assert result.exit_code == 2
    assert str(corpus) in result.output and expected in result.output
    assert "expected <root>/" in result.output and "https://" in result.output
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


def test_quickstart_end_to_end_on_a_tiny_synthesized_corpus(tracking_uri, tmp_path):
    """The demo's path: synthesize, build streams, train three methods, log, print the table."""
    import mlflow
    from click.testing import CliRunner

    tiny = [
        "scenario.intents=6",
        "scenario.phrasings_per_intent=1",
        "scenario.speakers=3",
        "scenario.valid_speakers=1",
        "scenario.test_speakers=1",
        "model.preset=tiny",
        "train.epochs=1",
    ]
    result = CliRunner().invoke(main, ["run", str(RUNS / "quickstart.yaml"), "-q", *[arg for o in tiny for arg in ("-o", o)]])
    assert result.exit_code == 0, result.output
    for method in ("finetune", "replay", "coconut"):
        assert re.search(rf"\| method={method} +\| +1 \|", result.output), result.output
    runs = mlflow.search_runs(experiment_names=["quickstart"], output_format="list")
    children = [run for run in runs if run.data.tags.get("suite.kind") == "child"]
    assert sorted(run.data.tags["suite.point"] for run in children) == ["method=coconut", "method=finetune", "method=replay"]
    for run in children:
        assert run.info.status == "FINISHED"
        assert 0.0 <= run.data.metrics["avg_acc"] <= 100.0
        history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "avg_acc_seen")
        assert [m.step for m in history] == [0, 1, 2]  # one row of the accuracy matrix per experience
    assert (tmp_path / "cache" / "spoken-commands").is_dir()
