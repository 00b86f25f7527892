"""Run specs: loading, defaults, overrides, grids, and one clear line for every bad input."""

from __future__ import annotations

import mlflow
import pytest
import yaml
from click.testing import CliRunner

from suite import spec as specs
from suite.cli import main
from suite.errors import DataError, SpecError


def run_cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_resolved_spec_fills_defaults_and_applies_overrides(toy_distribution, toy_spec):
    plan = specs.plan(toy_spec, ["train.lr=0.2", "seeds=[3,4,5]", "method.fail_at_step=null"])
    resolved = plan.base.to_dict()
    assert resolved["train"] == {"lr": 0.2, "device": "cpu"}
    assert resolved["seeds"] == [3, 4, 5]
    assert resolved["scenario"] == {"name": "toy-numbers", "size": 64, "noise": 0.1, "data_file": None}
    assert resolved["method"]["steps"] == 4
    assert plan.experiment == "toy-exp"
    assert [label for label, _ in plan.points] == ["toy-fit"]


def test_resolved_spec_round_trips(toy_distribution, toy_spec, tmp_path):
    plan = specs.plan(toy_spec, ["method.steps=7"])
    again = tmp_path / "again.yaml"
    again.write_text(plan.base.to_yaml())
    assert specs.plan(again).base.to_dict() == plan.base.to_dict()


def test_grid_points_replace_whole_sections(toy_distribution, toy_spec):
    plan = specs.plan(toy_spec, [], ["train.lr=[0.01,0.02]", "method=[{name: toy-fit, steps: 2}, {name: toy-fit, steps: 9}]"])
    labels = [label for label, _ in plan.points]
    assert labels == [  # a section's label names the settings that tell it apart from the axis's other values
        "train.lr=0.01 method=toy-fit steps=2",
        "train.lr=0.01 method=toy-fit steps=9",
        "train.lr=0.02 method=toy-fit steps=2",
        "train.lr=0.02 method=toy-fit steps=9",
    ]
    steps = [(p.train_options.lr, p.method_options.steps) for _, p in plan.points]
    assert steps == [(0.01, 2), (0.01, 9), (0.02, 2), (0.02, 9)]


def test_an_axis_over_several_paths_sets_them_together(toy_distribution, toy_spec, tmp_path):
    """Each method keeps the training settings tuned for it: no cartesian product across the joined paths."""
    spec = tmp_path / "paired.yaml"
    tree = yaml.safe_load(toy_spec.read_text())
    tree["grid"] = {"method, train.lr": [[{"name": "toy-fit", "steps": 2}, 0.01], [{"name": "toy-fit", "steps": 9}, 0.2]]}
    spec.write_text(yaml.safe_dump(tree))
    plan = specs.plan(spec)
    assert [(p.method_options.steps, p.train_options.lr) for _, p in plan.points] == [(2, 0.01), (9, 0.2)]
    assert [label for label, _ in plan.points] == ["method=toy-fit steps=2", "method=toy-fit steps=9"]  # lr rides along


def test_a_joined_axis_value_of_the_wrong_length_is_refused_with_exit_2(toy_distribution, toy_spec, tmp_path):
    spec = tmp_path / "paired.yaml"
    tree = yaml.safe_load(toy_spec.read_text())
    tree["grid"] = {"method.steps, train.lr": [[2, 0.01], [9]]}
    spec.write_text(yaml.safe_dump(tree))
    result = run_cli("show", str(spec))
    assert result.exit_code == 2
    assert "grid axis 'method.steps, train.lr': value 2 must be a list of 2 values, one per path; got [9]" in result.output


def test_show_prints_the_resolved_spec(toy_distribution, toy_spec):
    result = run_cli("show", str(toy_spec), "-o", "train.lr=0.3", "-o", "scenario.data_file=/not/yet/there.csv")
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.output)
    assert shown["train"]["lr"] == 0.3
    assert shown["scenario"]["noise"] == 0.1


def test_show_takes_grid_axes_like_sweep(toy_distribution, toy_spec):
    result = run_cli("show", str(toy_spec), "-g", "train.lr=[0.1,0.2]", "-g", "method.steps=[1]")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-3:] == [
        "# 2 grid points x 2 seeds:",
        "#   train.lr=0.1 method.steps=1",
        "#   train.lr=0.2 method.steps=1",
    ]


def test_only_and_skip_choose_grid_points_by_label_and_leave_the_others_unchecked(toy_distribution, toy_spec):
    """A skipped point is not pre-flighted: its missing data file stops nothing."""
    grid = ["scenario.data_file=[null, /no/such/file.npz]", "train.lr=[0.1,0.2]"]
    labels = lambda plan: [label for label, _ in plan.points]  # noqa: E731
    with pytest.raises(DataError, match="/no/such/file.npz not found"):
        specs.plan(toy_spec, [], grid)
    kept = specs.plan(
        toy_spec, [], grid, skip=["scenario.data_file=/no/such/file.npz train.lr=0.1", "scenario.data_file=/no/such/file.npz train.lr=0.2"]
    )
    assert labels(kept) == ["scenario.data_file=None train.lr=0.1", "scenario.data_file=None train.lr=0.2"]
    only = specs.plan(toy_spec, [], ["train.lr=[0.1,0.2,0.3]"], only=["train.lr=0.3", "train.lr=0.1"])
    assert labels(only) == ["train.lr=0.1", "train.lr=0.3"]  # grid order, not the order given
    assert [point.train_options.lr for _, point in only.points] == [0.1, 0.3]
    both = specs.plan(toy_spec, [], ["train.lr=[0.1,0.2,0.3]"], only=["train.lr=0.3", "train.lr=0.1"], skip=["train.lr=0.1"])
    assert labels(both) == ["train.lr=0.3"]


def test_a_skipped_baseline_leaves_the_launch_without_a_paired_column(toy_distribution, toy_spec):
    plan = specs.plan(toy_spec, ["report.baseline=train.lr=0.1"], ["train.lr=[0.1,0.2,0.3]"], skip=["train.lr=0.1"])
    assert plan.base.report_baseline is None and plan.base.to_dict()["report"]["baseline"] is None
    kept = specs.plan(toy_spec, ["report.baseline=train.lr=0.1"], ["train.lr=[0.1,0.2,0.3]"], skip=["train.lr=0.2"])
    assert kept.base.report_baseline == "train.lr=0.1"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--only", "train.lr=0.4"], "--only 'train.lr=0.4' is not a grid point; points: train.lr=0.1, train.lr=0.2"),
        (["--skip", "lr=0.1"], "--skip 'lr=0.1' is not a grid point; points: train.lr=0.1, train.lr=0.2"),
        (["--only", "train.lr=0.1", "--skip", "train.lr=0.1"], "--only and --skip leave no grid point to run"),
    ],
)
def test_a_selection_naming_no_point_is_exit_2_with_the_labels(toy_distribution, toy_spec, tracking_uri, args, message):
    result = run_cli("run", str(toy_spec), "-g", "train.lr=[0.1,0.2]", *args, "--tracking-uri", tracking_uri)
    assert result.exit_code == 2 and message in result.output, result.output
    assert mlflow.search_experiments(filter_string="name = 'toy-exp'") == []  # nothing was created


def test_run_launches_only_the_points_kept(toy_distribution, toy_spec, tracking_uri):
    result = run_cli(
        "run",
        str(toy_spec),
        "-o",
        "seeds=[0]",
        "-g",
        "train.lr=[0.1,0.2,0.3]",
        "--skip",
        "train.lr=0.2",
        "-q",
        "--tracking-uri",
        tracking_uri,
    )
    assert result.exit_code == 0, result.output
    runs = mlflow.search_runs(experiment_names=["toy-exp"], filter_string="tags.`suite.kind` = 'child'")
    assert sorted(runs["tags.suite.point"]) == ["train.lr=0.1", "train.lr=0.3"]


def test_overrides_take_what_the_user_typed(toy_distribution, toy_spec):
    """A string option gets the text as typed; other options get YAML values; one seed is a list."""
    typed = {
        "cuda:1": "cuda:1",
        "[5,inf)": "[5,inf)",  # a RecBole interval: not valid YAML
        "1:30": "1:30",  # YAML 1.1 would read 90
        "yes": "yes",  # YAML 1.1 would read True
        "0.5": "0.5",
    }
    for text, expected in typed.items():
        point = specs.plan(toy_spec, [f"train.device={text}"]).base
        assert point.train_options.device == expected, text
    resolved = specs.plan(toy_spec, ["seeds=0", "experiment=2024", "train.lr=0.5"]).base
    assert resolved.seeds == [0] and resolved.experiment == "2024" and resolved.train_options.lr == 0.5
    with pytest.raises(SpecError, match=r"override 'train.lr=\[5,inf\)': value is not valid YAML"):
        specs.plan(toy_spec, ["train.lr=[5,inf)"])


def test_report_section_keeps_metrics_and_a_baseline_point(toy_distribution, toy_spec):
    plan = specs.plan(toy_spec, ["report.metrics=[final_loss]", "report.baseline=train.lr=0.1"], ["train.lr=[0.1,0.2]"])
    assert plan.base.report_metrics == ["final_loss"] and plan.base.report_baseline == "train.lr=0.1"
    assert plan.base.to_dict()["report"] == {"metrics": ["final_loss"], "baseline": "train.lr=0.1"}


BAD_INPUTS = [
    # (spec text or None for a missing file, overrides, fragments expected in the one-line error)
    (None, [], ["spec file not found"]),
    ("scenario: {name: toy-numbers\nmodel: [", [], ["invalid YAML"]),
    ("- just\n- a list\n", [], ["expected a mapping"]),
    (
        "scenario: {name: toy-numbers}\nmodel: {name: toy-linear}\nmethod: {name: toy-fit}\ntrian: {lr: 0.1}\n",
        [],
        ["unknown key 'trian'", "did you mean 'train'"],
    ),
    (
        "scenario: {name: toy-numbers, sise: 3}\nmodel: {name: toy-linear}\nmethod: {name: toy-fit}\n",
        [],
        ["unknown key 'scenario.sise'", "did you mean 'size'"],
    ),
    (
        "scenario: {name: toy-numbers, size: many}\nmodel: {name: toy-linear}\nmethod: {name: toy-fit}\n",
        [],
        ["scenario.size", "valid integer", "'many'"],
    ),
    (
        "scenario: {name: toy-numbers, size: 0}\nmodel: {name: toy-linear}\nmethod: {name: toy-fit}\n",
        [],
        ["scenario.size", "greater than or equal to 1", "got 0"],
    ),
    ("scenario: {name: toy-numbers}\nmodel: {name: toy-linear}\nmethod: {name: toy-fitt}\n", [], ["unknown method 'toy-fitt'", "toy-fit"]),
    (
        "scenario: {name: no-such-data}\nmodel: {name: toy-linear}\nmethod: {name: toy-fit}\n",
        [],
        ["unknown scenario 'no-such-data'", "toy-numbers"],
    ),
    (
        "scenario: {name: toy-numbers}\nmodel: {name: toy-broken}\nmethod: {name: toy-fit}\n",
        [],
        ["model 'toy-broken'", "expected a suite.api.ModelEntry"],
    ),
    ("scenario: {name: toy-numbers}\nmodel: {name: toy-linear}\nmethod: {name: toy-fit}\nseeds: [1, 1]\n", [], ["seeds must be distinct"]),
    (
        "scenario: {name: toy-numbers}\nmodel: {name: toy-linear}\nmethod: {name: toy-fit}\n",
        ["train.lrr=0.1"],
        ["override 'train.lrr=0.1'", "unknown key 'train.lrr'", "did you mean 'lr'"],
    ),
    (
        "scenario: {name: toy-numbers}\nmodel: {name: toy-linear}\nmethod: {name: toy-fit}\nseeds: [0]\n",
        ["seeds.first=1"],
        ["override 'seeds.first=1'", "'seeds' is a value"],
    ),
    (
        "scenario: {name: toy-numbers}\nmodel: {name: toy-linear}\nmethod: {name: toy-fit}\n",
        ["method.steps=0"],
        ["override 'method.steps=0'", "method.steps", "greater than or equal to 1"],
    ),
    (
        "scenario: {name: toy-numbers}\nmodel: {name: toy-linear}\nmethod: {name: toy-fit}\n",
        ["train.lr=fast"],
        ["override 'train.lr=fast'", "train.lr", "valid number", "'fast'"],
    ),
    ("scenario: {name: toy-numbers}\nmodel: {name: toy-linear}\nmethod: {name: toy-fit}\n", ["train.lr"], ["expected KEY=VALUE"]),
    ("scenario: {name: toy-numbers}\nmodel: {name: toy-linear}\nmethod: {name: toy-fit}\n", ["train.lr=[1, 2"], ["not valid YAML"]),
    ("scenario: {name: toy-numbers}\nmodel: {name: toy-linear}\n", [], ["missing required key 'method'"]),
    (
        "scenario: {name: toy-numbers, data_file: /no/such/file.csv}\nmodel: {name: toy-linear}\nmethod: {name: toy-fit}\n",
        [],
        ["toy data file /no/such/file.csv not found"],
    ),
    (
        "scenario: {name: toy-numbers, size: 4}\nmodel: {name: toy-linear}\nmethod: {name: toy-fit, batch_size: 8}\n",
        [],
        ["method.batch_size 8 is larger than scenario.size 4"],  # the method's own pre-flight check
    ),
    (
        "experiment: " + "x" * 501 + "\nscenario: {name: toy-numbers}\nmodel: {name: toy-linear}\nmethod: {name: toy-fit}\n",
        [],
        ["experiment: string should have at most 500 characters", "(503 characters)"],  # MLflow's limit
    ),
    (
        "scenario: {name: toy-numbers}\nmodel: {name: toy-linear}\nmethod: {name: toy-fit}\nreport: {baseline: nope}\n",
        [],
        ["report.baseline 'nope' is not a grid point; points: toy-fit"],
    ),
    ("scenario: {name: toy-numbers}\nmodel: {name: toy-linear}\nmethod: {name: toy-fit}\n", ["seeds=[0,"], ["not valid YAML"]),
    (b"scenario: {name: toy-numbers}\n# caf\xe9\n", [], ["not UTF-8 text (byte 0xe9 on line 2)"]),
]


@pytest.mark.parametrize("text, overrides, fragments", BAD_INPUTS)
def test_bad_input_is_one_line_exit_2_and_no_run(toy_distribution, tracking_uri, tmp_path, text, overrides, fragments):
    path = tmp_path / "bad.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text)
    args = ["run", str(path), "--tracking-uri", tracking_uri]
    for override in overrides:
        args += ["-o", override]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert str(path) in lines[0] or lines[0].startswith("error: override '")
    assert not (tmp_path / "mlflow.db").exists() or mlflow.search_runs(search_all_experiments=True, output_format="list") == []


def test_override_parse_keeps_yaml_types():
    assert specs.Override.parse("a.b=[0, 1]").value == [0, 1]
    assert specs.Override.parse("a=1e-3").value == "1e-3"  # YAML 1.1: pydantic turns it into a float later
    assert specs.Override.parse("a=0.001").value == 0.001
    assert specs.Override.parse("a=true").value is True
    assert specs.Override.parse("a.b.c=x").path == ("a", "b", "c")
    with pytest.raises(SpecError, match="empty component"):
        specs.Override.parse("a..b=1")


def test_families_must_match(toy_distribution, tmp_path):
    path = tmp_path / "mixed.yaml"
    path.write_text("scenario: {name: toy-other}\nmodel: {name: toy-linear}\nmethod: {name: toy-fit}\n")
    with pytest.raises(SpecError, match="must fit together: scenario 'toy-other' is other"):
        specs.plan(path)
