"""The recbole scenario and the text converter: locations, fields, leave-one-out, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from pydantic import ValidationError

from scenarios.recsys.convert import convert_sequences
from scenarios.recsys.entries import RECBOLE
from suite.api import BuildContext
from suite.errors import DataError
from suite.sequential.entries import CL4SRecOptions, MCLRecOptions, MetaTrainerOptions, SASRecOptions, SequentialTrainOptions


def _ctx(tmp_path: Path) -> BuildContext:
    return BuildContext(seed=0, cache_dir=tmp_path / "cache", run_dir=tmp_path / "run")


def _atomic(tmp_path: Path, name: str, header: str, rows: list[str]) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / f"{name}.inter").write_text(header + "\n" + "\n".join(rows) + "\n")
    return folder


def test_ml100k_is_found_inside_recboles_wheel(tmp_path: Path) -> None:
    scenario = RECBOLE.build(RECBOLE.options(), _ctx(tmp_path))
    assert scenario.dataset.name == "ml-100k" and scenario.dataset.users == 943 and scenario.dataset.interactions == 100000
    fragment = scenario.config_fragment()
    assert fragment["load_col"] == {"inter": ["user_id", "item_id", "timestamp"]}
    assert fragment["eval_args"]["split"] == {"LS": "valid_and_test"} and fragment["eval_args"]["order"] == "TO"


def test_max_users_writes_a_subset_of_the_first_users(tmp_path: Path) -> None:
    scenario = RECBOLE.build(RECBOLE.options(max_users=5), _ctx(tmp_path))
    assert scenario.dataset.name == "ml-100k-u5" and scenario.dataset.users == 5
    lines = scenario.dataset.inter_file.read_text().splitlines()
    assert lines[0] == "user_id:token\titem_id:token\ttimestamp:float"
    assert len({line.split("\t")[0] for line in lines[1:]}) == 5


def test_missing_dataset_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nowhere: dataset folder not found"):
        RECBOLE.build(RECBOLE.options(path=str(tmp_path / "nowhere")), _ctx(tmp_path))
    with pytest.raises(DataError, match="not shipped"):
        RECBOLE.build(RECBOLE.options(dataset="Beauty"), _ctx(tmp_path))


def test_missing_inter_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty\.inter: interaction file not found"):
        RECBOLE.build(RECBOLE.options(path=str(tmp_path / "empty")), _ctx(tmp_path))


@pytest.mark.parametrize(
    ("header", "role", "field"),
    [
        ("item_id:token\ttimestamp:float", "user", "user_id"),
        ("user_id:token\ttimestamp:float", "item", "item_id"),
        ("user_id:token\titem_id:token\trating:float", r"order \(time\)", "timestamp"),
    ],
)
def test_atomic_file_missing_a_field(tmp_path: Path, header: str, role: str, field: str) -> None:
    folder = _atomic(tmp_path, "toy", header, ["1\t2\t3"])
    with pytest.raises(DataError, match=rf"toy\.inter: missing the {role} field '{field}'"):
        RECBOLE.build(RECBOLE.options(path=str(folder)), _ctx(tmp_path))


def test_dataset_too_small_for_leave_one_out(tmp_path: Path) -> None:
    header = "user_id:token\titem_id:token\ttimestamp:float"
    folder = _atomic(tmp_path, "tiny", header, ["u1\ti1\t0", "u1\ti2\t1", "u2\ti1\t0"])
    with pytest.raises(DataError, match="no users left for leave-one-out"):
        RECBOLE.build(RECBOLE.options(path=str(folder)), _ctx(tmp_path))
    with pytest.raises(DataError, match="2 users have fewer than 3 interactions"):
        RECBOLE.build(RECBOLE.options(path=str(folder), user_inter_num_interval="[1,inf)"), _ctx(tmp_path))


def test_converter_writes_positions_as_the_order_field(tmp_path: Path) -> None:
    source = tmp_path / "Beauty.txt"
    source.write_text("1 10 11 12\n2 11 13 10 14\n\n")
    target = convert_sequences(source, tmp_path / "data", "Beauty")
    assert target == tmp_path / "data" / "Beauty" / "Beauty.inter"
    lines = target.read_text().splitlines()
    assert lines[0] == "user_id:token\titem_id:token\ttimestamp:float"
    assert lines[1:4] == ["1\t10\t0", "1\t11\t1", "1\t12\t2"] and lines[-1] == "2\t14\t3"
    scenario = RECBOLE.build(RECBOLE.options(path=str(target.parent)), _ctx(tmp_path))
    assert scenario.dataset.name == "Beauty" and scenario.dataset.users == 2 and scenario.dataset.interactions == 7


def test_converter_rejects_bad_lines_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="sequence file not found"):
        convert_sequences(tmp_path / "absent.txt", tmp_path / "data")
    bad = tmp_path / "bad.txt"
    bad.write_text("1 10 11\n7\n")
    with pytest.raises(DataError, match=r"bad\.txt:2: expected 'user item1 item2 \.\.\.'"):
        convert_sequences(bad, tmp_path / "data")


def test_presets_point_to_converted_data_and_fail_clearly_when_absent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from suite import spec

    monkeypatch.chdir(tmp_path)
    root = Path(__file__).resolve().parents[1] / "runs"
    expected = {"beauty": (0.05, 0.0), "sports": (0.4, 0.04), "yelp": (0.1, 0.03)}
    for name, (beta, lam) in expected.items():
        resolved = spec.plan(root / f"mclrec-{name}.yaml", check_data=False).base
        assert (resolved.model_options.cl2_weight, resolved.model_options.cl1_weight) == (beta, lam)
        with pytest.raises(DataError, match="dataset folder not found"):
            resolved.scenario.build(resolved.scenario_options, _ctx(tmp_path))
        with pytest.raises(DataError, match=rf"mclrec-{name}\.yaml: data/\w+: dataset folder not found"):
            spec.plan(root / f"mclrec-{name}.yaml")  # pre-flight: before any MLflow run is opened


def test_preflight_names_a_missing_field_before_any_run(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from suite.cli import main

    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "shop.inter").write_text("user_id:token\titem_id:token\n1\t2\n", encoding="utf-8")
    store = f"sqlite:///{tmp_path / 'm.db'}"
    result = CliRunner().invoke(
        main,
        [
            "run",
            str(Path(__file__).resolve().parents[1] / "runs" / "sasrec-ml100k.yaml"),
            "-q",
            "--tracking-uri",
            store,
            "-o",
            f"scenario.path={folder}",
        ],
    )
    assert result.exit_code == 2
    assert "shop.inter: missing the order (time) field 'timestamp'" in result.output
    assert not (tmp_path / "m.db").exists() or not MlflowClient(store).search_runs(
        [e.experiment_id for e in MlflowClient(store).search_experiments()]
    )


def test_unknown_variant_flags_are_rejected() -> None:
    with pytest.raises(ValidationError, match="cl3"):
        MCLRecOptions(cl3=False)
    with pytest.raises(ValidationError, match="cl2"):
        CL4SRecOptions(cl2=True)  # CL4SRec has no augmenters to switch on
    with pytest.raises(ValidationError, match="regularizer_scope"):
        MCLRecOptions(regularizer_scope="global")
    with pytest.raises(ValidationError, match="meta_optimization"):
        MetaTrainerOptions(meta_optimization="four-step")
    with pytest.raises(ValidationError, match="beta"):
        SASRecOptions(beta=0.1)
    with pytest.raises(ValidationError, match="n_heads"):
        SASRecOptions(hidden_size=64, n_heads=3)
    with pytest.raises(ValidationError, match="epoch"):
        SequentialTrainOptions(epoch=3)
    with pytest.raises(ValidationError, match="max_user"):
        RECBOLE.options(max_user=3)
