"""The recbole scenario and the text converter: locations, fields, leave-one-out, bad input."""

from __future__ import annotations

import re
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
    folder.mkdir(parents=True)
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
    assert scenario.dataset.label == "ml-100k-u5" and scenario.dataset.name.startswith("ml-100k-u5-") and scenario.dataset.users == 5
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


def test_converter_reads_a_user_item_timestamp_csv(tmp_path: Path) -> None:
    source = tmp_path / "clicks.csv"
    source.write_text("timestamp,user,item,rating\n5,a,x,1\n7,a,y,2\n9,a,z,3\n\n6,b,x,4\n8,b,z,5\n9.5,b,y,1\n")
    target = convert_sequences(source, tmp_path / "data")
    lines = target.read_text().splitlines()
    assert target == tmp_path / "data" / "clicks" / "clicks.inter"
    assert lines == ["user_id:token\titem_id:token\ttimestamp:float", "a\tx\t5", "a\ty\t7", "a\tz\t9", "b\tx\t6", "b\tz\t8", "b\ty\t9.5"]
    scenario = RECBOLE.build(RECBOLE.options(path=str(target.parent)), _ctx(tmp_path))
    assert scenario.dataset.users == 2 and scenario.dataset.interactions == 6


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("user,item\na,x\n", r"clicks\.csv:1: no timestamp column"),
        ("user,item,timestamp\na,x,soon\n", r"clicks\.csv:2: timestamp 'soon' is not a number"),
        ('user,item,timestamp\na,"x\ty",1\n', r"clicks\.csv:2: user 'a' / item 'x\\ty'"),
        ("user,item,timestamp\n", r"clicks\.csv: no interactions found"),
    ],
)
def test_converter_names_the_csv_line_it_cannot_use(tmp_path: Path, content: str, message: str) -> None:
    source = tmp_path / "clicks.csv"
    source.write_text(content)
    with pytest.raises(DataError, match=message):
        convert_sequences(source, tmp_path / "data")
    assert not (tmp_path / "data").exists()


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


# -- derived caches are keyed by content (issue 10.3) -------------------------------------


def _rows(users: int, offset: int = 0) -> list[str]:
    return [f"u{user}\ti{(user + step + offset) % 9}\t{step}" for user in range(users) for step in range(4)]


HEADER = "user_id:token\titem_id:token\ttimestamp:float"


def test_a_dataset_with_the_same_folder_name_never_reuses_another_ones_subset(tmp_path: Path) -> None:
    first = _atomic(tmp_path / "a", "shop", HEADER, _rows(5))
    second = _atomic(tmp_path / "b", "shop", HEADER, _rows(5, offset=3))
    ctx = _ctx(tmp_path)
    one = RECBOLE.build(RECBOLE.options(path=str(first), max_users=3), ctx).dataset
    two = RECBOLE.build(RECBOLE.options(path=str(second), max_users=3), ctx).dataset
    assert one.name != two.name and one.digest != two.digest
    assert one.inter_file.read_text().splitlines()[1:] == _rows(3)
    assert two.inter_file.read_text().splitlines()[1:] == _rows(3, offset=3)


def test_fixing_the_source_file_gives_a_fresh_subset_and_an_unchanged_one_is_reused(tmp_path: Path) -> None:
    folder = _atomic(tmp_path, "shop", HEADER, _rows(5))
    ctx = _ctx(tmp_path)
    before = RECBOLE.build(RECBOLE.options(path=str(folder), max_users=3), ctx).dataset
    written = before.inter_file.stat().st_mtime_ns
    again = RECBOLE.build(RECBOLE.options(path=str(folder), max_users=3), ctx).dataset
    assert again.inter_file == before.inter_file and again.inter_file.stat().st_mtime_ns == written  # reused, not rewritten
    (folder / "shop.inter").write_text(HEADER + "\n" + "\n".join(_rows(5, offset=1)) + "\n")
    fixed = RECBOLE.build(RECBOLE.options(path=str(folder), max_users=3), ctx).dataset
    assert fixed.name != before.name and fixed.inter_file.read_text().splitlines()[1:] == _rows(3, offset=1)
    other_size = RECBOLE.build(RECBOLE.options(path=str(folder), max_users=4), ctx).dataset
    assert other_size.name != fixed.name and other_size.users == 4


# -- RecBole's filters: k-core, iterated (issue 8.1) ----------------------------------------


def _cascade_rows() -> list[str]:
    """A 5x5 core, plus users v0..v3 whose fifth item j has only those 4 users.

    One pass of 5-core filtering drops j but keeps v0..v3 (5 interactions each when counted);
    the second pass drops them (4 left each); the core survives: 5 users, 5 items, 25 rows.
    """
    core = [f"u{user}\ti{item}\t{item}" for user in range(5) for item in range(5)]
    chain = [f"v{user}\ti{item}\t{item}" for user in range(4) for item in range(4)] + [f"v{user}\tj\t9" for user in range(4)]
    return core + chain


@pytest.mark.slow
def test_five_core_is_iterated_until_stable_exactly_as_recbole_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from recbole.data import create_dataset
    from recbole.model.sequential_recommender import SASRec

    from suite.sequential.pipeline import recbole_config

    folder = _atomic(tmp_path, "cascade", HEADER, _cascade_rows())
    options = RECBOLE.options(path=str(folder), user_inter_num_interval="[5,inf)", item_inter_num_interval="[5,inf)")
    scenario = RECBOLE.build(options, _ctx(tmp_path))
    assert (scenario.dataset.users, scenario.dataset.items, scenario.dataset.interactions) == (5, 5, 25)
    monkeypatch.chdir(tmp_path)
    config_dict = {**scenario.config_fragment(), "loss_type": "CE", "train_neg_sample_args": None, "gpu_id": "", "seed": 0}
    recbole = create_dataset(recbole_config(SASRec, config_dict))
    assert (recbole.user_num - 1, recbole.item_num - 1, recbole.inter_num) == (5, 5, 25)
    assert scenario.config_fragment()["eval_args"]["order"] == "TO"  # leave-one-out in time order


def test_preflight_accounts_for_the_k_core_and_stops_before_any_run(tmp_path: Path) -> None:
    folder = _atomic(tmp_path, "cascade", HEADER, _cascade_rows())
    RECBOLE.check(RECBOLE.options(path=str(folder), user_inter_num_interval="[5,inf)", item_inter_num_interval="[5,inf)"))
    with pytest.raises(DataError, match=r"cascade\.inter: no users left for leave-one-out after filtering"):
        RECBOLE.check(RECBOLE.options(path=str(folder), user_inter_num_interval="[6,inf)", item_inter_num_interval="[5,inf)"))
    result, store = _cli_run(tmp_path, folder, "scenario.user_inter_num_interval='[6,inf)'", "scenario.item_inter_num_interval='[5,inf)'")
    assert result.exit_code == 2 and "no users left for leave-one-out" in result.output
    assert _no_runs(tmp_path, store)


def _cli_run(tmp_path: Path, folder: Path, *overrides: str):
    from click.testing import CliRunner

    from suite.cli import main

    store = f"sqlite:///{tmp_path / 'm.db'}"
    spec = Path(__file__).resolve().parents[1] / "runs" / "sasrec-ml100k.yaml"
    arguments = ["run", str(spec), "-q", "--tracking-uri", store, "-o", f"scenario.path={folder}"]
    for override in overrides:
        arguments += ["-o", override]
    return CliRunner().invoke(main, arguments), store


def _no_runs(tmp_path: Path, store: str) -> bool:
    if not (tmp_path / "m.db").exists():
        return True
    client = MlflowClient(store)
    return not client.search_runs([experiment.experiment_id for experiment in client.search_experiments()])


# -- bad bytes and bad values are one line naming the file (and the line), before any run (10.8, 10.9) --


def test_too_small_for_leave_one_out_is_found_before_any_run(tmp_path: Path) -> None:
    folder = _atomic(tmp_path, "tiny", HEADER, ["u1\ti1\t0", "u1\ti2\t1", "u2\ti1\t0"])
    result, store = _cli_run(tmp_path, folder)
    assert result.exit_code == 2 and "tiny.inter: no users left for leave-one-out" in result.output
    assert len(result.output.strip().splitlines()) == 1 and _no_runs(tmp_path, store)


def test_undecodable_bytes_name_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "latin"
    folder.mkdir()
    (folder / "latin.inter").write_bytes(HEADER.encode() + b"\nu1\tcaf\xe9\t0\nu1\ti2\t1\nu1\ti3\t2\n")
    with pytest.raises(DataError, match=r"latin\.inter: not UTF-8 text \(undecodable byte b'\\xe9' at offset \d+\)"):
        RECBOLE.check(RECBOLE.options(path=str(folder)))
    (folder / "latin.inter").write_bytes(b"user_id:token\titem\xff:token\n")
    with pytest.raises(DataError, match=r"latin\.inter: not UTF-8 text"):
        RECBOLE.check(RECBOLE.options(path=str(folder)))
    result, store = _cli_run(tmp_path, folder)
    assert result.exit_code == 2 and "latin.inter: not UTF-8 text" in result.output and _no_runs(tmp_path, store)


def test_a_non_numeric_timestamp_names_the_file_and_the_line(tmp_path: Path) -> None:
    rows = ["u1\ti1\t0", "", "u1\ti2\t1", "u1\ti3\tyesterday", "u1\ti4\t"]
    folder = _atomic(tmp_path, "clock", HEADER, rows)
    with pytest.raises(DataError, match=r"clock\.inter:5: timestamp 'yesterday' is not a number \(2 such rows\)"):
        RECBOLE.check(RECBOLE.options(path=str(folder)))
    folder = _atomic(tmp_path, "gap", HEADER, ["u1\ti1\t0", "u1\ti2\t", "u1\ti3\t2"])
    with pytest.raises(DataError, match=r"gap\.inter:3: timestamp missing"):
        RECBOLE.check(RECBOLE.options(path=str(folder)))


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("user_id:token\titem_id:token\ttimestamp:date", r"header column 'timestamp:date': expected name:type"),
        ("user_id\titem_id:token\ttimestamp:float", r"header column 'user_id': expected name:type"),
        ("user_id:float\titem_id:token\ttimestamp:float", r"the user field 'user_id' is float, expected user_id:token"),
        ("user_id:token\titem_id:token\ttimestamp:token", r"the order \(time\) field 'timestamp' is token, expected timestamp:float"),
    ],
)
def test_headers_recbole_cannot_read_are_named(tmp_path: Path, header: str, message: str) -> None:
    folder = _atomic(tmp_path, "odd", header, ["u1\ti1\t0"])
    with pytest.raises(DataError, match=rf"odd\.inter: {message}"):
        RECBOLE.check(RECBOLE.options(path=str(folder)))


# -- suite convert-sequences: one line, exit 2, nothing left behind (10.9) --------------------


def _convert(*arguments: str):
    from click.testing import CliRunner

    from suite.cli import main

    return CliRunner().invoke(main, ["convert-sequences", *arguments])


def _leftovers(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*"))


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (b"1 10 11\n7\n", None, r"bad\.txt:2: expected 'user item1 item2 \.\.\.', got only '7'"),
        (b"1 10 11\n2 \xff\xfe 3\n", None, r"bad\.txt:2: not UTF-8 text"),
        (b"\n\n", None, r"bad\.txt: no sequences found"),
        (b"1 10 11\n", "../escape", r"--name '\.\./escape': the name becomes the RecBole dataset name"),
    ],
)
def test_convert_errors_are_one_line_exit_2_and_leave_nothing_behind(
    tmp_path: Path, content: bytes, name: str | None, message: str
) -> None:
    source = tmp_path / "in" / "bad.txt"
    source.parent.mkdir()
    source.write_bytes(content)
    out = tmp_path / "out" / "nested"
    result = _convert(str(source), "--out", str(out), *(["--name", name] if name else []))
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and re.search(message, lines[0]), lines
    assert _leftovers(tmp_path) == ["in", "in/bad.txt"]  # no out/, no nested/, no .tmp file


def test_convert_reports_missing_files_and_keeps_an_existing_output_folder(tmp_path: Path) -> None:
    result = _convert(str(tmp_path / "absent.txt"), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and result.output.strip() == f"error: {tmp_path / 'absent.txt'}: sequence file not found"
    result = _convert(str(tmp_path), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and "not a file" in result.output
    (tmp_path / "data" / "bad").mkdir(parents=True)
    (tmp_path / "bad.txt").write_text("1 10 11\n7\n")
    assert _convert(str(tmp_path / "bad.txt"), "--out", str(tmp_path / "data")).exit_code == 2
    assert _leftovers(tmp_path / "data") == ["bad"]  # it was there before: kept, and empty
    (tmp_path / "good.txt").write_text("1 10 11 12\n")
    result = _convert(str(tmp_path / "good.txt"), "--out", str(tmp_path / "data"))
    assert result.exit_code == 0 and _leftovers(tmp_path / "data") == ["bad", "good", "good/good.inter", "good/good.inter.xxh3"]
