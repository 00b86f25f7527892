"""Pre-flight checks of the SLU scenarios: every data error found while planning, before any MLflow run.

Each case calls the entry's ``check(options)`` (what the launcher runs for every grid point)
and asserts the one-line message; one case goes through ``suite run`` to show that exit 2
leaves the tracking store without a run.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient
from slu_fixtures import copy_corpus

from scenarios.slu import grammar
from scenarios.slu.entries import FSC, SLURP, SPOKEN_COMMANDS
from suite.cli import main
from suite.errors import DataError, SpecError

GRAMMAR_CLASSES = [intent.label for intent in grammar.intents()]


def check(entry, **options) -> None:
    entry.check(entry.options(**options))


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------- spoken-commands: the grammar gives the classes


def test_spoken_commands_check_passes_without_synthesizing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUITE_CACHE", str(tmp_path / "cache"))
    check(SPOKEN_COMMANDS, num_experiences=6)
    check(SPOKEN_COMMANDS, speakers=40, valid_speakers=4, test_speakers=8, num_experiences=8, class_order=GRAMMAR_CLASSES[::-1])
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize(
    "options, message",
    [
        ({"num_experiences": 40}, r"scenario.num_experiences=40: must be between 1 and the number of classes \(32\)"),
        ({"intents": 5, "num_experiences": 6}, r"scenario.num_experiences=6: must be between 1 and the number of classes \(5\)"),
        ({"classes_per_exp": [10, 10]}, r"scenario.classes_per_exp \[10, 10\] sums to 20 but the corpus has 32 classes"),
        (
            {"class_order": GRAMMAR_CLASSES[:-1] + ["fly_away_none"]},
            r"not a permutation of the 32 classes \(missing: .*; unknown: fly_away_none\)",
        ),
        ({"class_order": GRAMMAR_CLASSES[:3], "intents": 4, "num_experiences": 2}, r"not a permutation of the 4 classes \(missing: "),
    ],
)
def test_spoken_commands_protocol_errors_are_found_from_the_grammar(options, message) -> None:
    with pytest.raises(SpecError, match=message) as error:
        check(SPOKEN_COMMANDS, **options)
    one_line(error)


def test_spoken_commands_too_many_phrasings_is_refused() -> None:
    with pytest.raises(Exception, match="phrasings_per_intent"):
        check(SPOKEN_COMMANDS, phrasings_per_intent=9)


# ---------------------------------------------------------------- FSC: CSVs read, audio files stat'ed


@pytest.fixture
def fsc_copy(fsc_root: Path, tmp_path: Path) -> Path:
    return copy_corpus(fsc_root, tmp_path / "fsc")


def csv_rows(root: Path, split: str) -> list[str]:
    return (root / "data" / f"{split}_data.csv").read_text().splitlines()


def test_fsc_check_passes_on_a_good_copy_and_on_empty_audio_files(fsc_copy: Path) -> None:
    """The check stats the audio files and never decodes them: empty files pass (the build would refuse them)."""
    check(FSC, root=str(fsc_copy), num_experiences=5)
    for wav in (fsc_copy / "wavs").rglob("*.wav"):
        wav.write_bytes(b"")
    check(FSC, root=str(fsc_copy), num_experiences=5)


def test_fsc_missing_wav_is_named_with_its_csv_line(fsc_copy: Path) -> None:
    relpath = csv_rows(fsc_copy, "valid")[3].split(",")[1]
    (fsc_copy / relpath).unlink()
    with pytest.raises(DataError) as error:
        check(FSC, root=str(fsc_copy), num_experiences=5)
    assert one_line(error) == (
        f"{fsc_copy / relpath}: audio file not found (listed at {fsc_copy}/data/valid_data.csv:4); "
        "1 of 50 audio files are missing (set scenario.skip_bad_audio: true to skip them)"
    )
    check(FSC, root=str(fsc_copy), num_experiences=5, skip_bad_audio=True)  # the build will skip and report it


def test_fsc_missing_column_is_named(fsc_copy: Path) -> None:
    path = fsc_copy / "data" / "valid_data.csv"
    path.write_text(path.read_text().replace(",location", ",place", 1))
    with pytest.raises(
        DataError, match=r"valid_data.csv lacks column\(s\) location \(found ,path,speakerId,transcription,action,object,place\)"
    ):
        check(FSC, root=str(fsc_copy))


def test_fsc_undecodable_bytes_are_located(fsc_copy: Path) -> None:
    path = fsc_copy / "data" / "train_data.csv"
    lines = path.read_bytes().split(b"\n")
    lines[2] = lines[2][:4] + b"\xff\xfe" + lines[2][4:]
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(DataError) as error:
        check(FSC, root=str(fsc_copy))
    assert one_line(error) == f"{path}:3: not valid UTF-8 (byte 0xff at column 5); expected UTF-8 text"


def test_fsc_empty_required_field_is_located(fsc_copy: Path) -> None:
    path = fsc_copy / "data" / "test_data.csv"
    lines = csv_rows(fsc_copy, "test")
    fields = lines[5].split(",")
    fields[2] = ""  # speakerId
    lines[5] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"test_data.csv:6: empty speakerId"):
        check(FSC, root=str(fsc_copy))


@pytest.mark.parametrize(
    "options, error_type, message",
    [
        ({"num_experiences": 6}, SpecError, r"num_experiences=6: must be between 1 and the number of classes \(5\)"),
        ({"classes_per_exp": [2, 2]}, SpecError, r"classes_per_exp \[2, 2\] sums to 4 but the corpus has 5 classes"),
        (
            {"class_order": ["activate_lights_none"] * 5, "num_experiences": 5},
            SpecError,
            r"not a permutation of the 5 classes \(missing: .*; repeated: activate_lights_none\)",
        ),
    ],
)
def test_fsc_protocol_errors_are_found_from_the_csvs(fsc_root: Path, options, error_type, message) -> None:
    with pytest.raises(error_type, match=message) as error:
        check(FSC, root=str(fsc_root), **options)
    one_line(error)


def test_fsc_class_seen_only_in_test_is_refused(fsc_copy: Path) -> None:
    path = fsc_copy / "data" / "test_data.csv"
    lines = csv_rows(fsc_copy, "test")
    lines[1] = lines[1].rsplit(",", 3)[0] + ",dance,tango,none"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"class\(es\) dance_tango_none appear in the test split but never in train"):
        check(FSC, root=str(fsc_copy))


# ---------------------------------------------------------------- SLURP: jsonl read, FLAC files stat'ed


@pytest.fixture
def slurp_copy(slurp_root: Path, tmp_path: Path) -> Path:
    return copy_corpus(slurp_root, tmp_path / "slurp")


def annotations(root: Path, name: str) -> Path:
    return root / "dataset" / "slurp" / name


def test_slurp_check_passes_on_the_repository_layout(slurp_root: Path) -> None:
    check(SLURP, root=str(slurp_root), num_experiences=4)
    check(SLURP, root=str(slurp_root), num_experiences=4, use_synthetic=True, label="scenario")


def test_slurp_malformed_line_is_located(slurp_copy: Path) -> None:
    path = annotations(slurp_copy, "devel.jsonl")
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], lines[1][:-1], *lines[2:]]) + "\n")
    with pytest.raises(DataError, match=r"devel.jsonl:2: not valid JSON \(") as error:
        check(SLURP, root=str(slurp_copy))
    one_line(error)


def test_slurp_undecodable_bytes_are_located(slurp_copy: Path) -> None:
    path = annotations(slurp_copy, "test.jsonl")
    lines = path.read_bytes().split(b"\n")
    lines[1] = lines[1][:10] + b"\xe9" + lines[1][10:]  # a Latin-1 'e acute' inside the JSON
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(DataError, match=r"test.jsonl:2: not valid UTF-8 \(byte 0xe9 at column 11\); expected UTF-8 text"):
        check(SLURP, root=str(slurp_copy))


def test_slurp_missing_flac_is_named_with_its_jsonl_line(slurp_copy: Path) -> None:
    entry = json.loads(annotations(slurp_copy, "train.jsonl").read_text().splitlines()[4])
    missing = slurp_copy / "audio" / "slurp_real" / entry["recordings"][1]["file"]
    missing.unlink()
    with pytest.raises(DataError) as error:
        check(SLURP, root=str(slurp_copy))
    assert one_line(error).startswith(f"{missing}: audio file not found (listed at {annotations(slurp_copy, 'train.jsonl')}:5); 1 of 32 ")


def test_slurp_recording_outside_the_audio_folder_is_refused(slurp_copy: Path) -> None:
    path = annotations(slurp_copy, "train.jsonl")
    lines = path.read_text().splitlines()
    entry = json.loads(lines[0])
    entry["recordings"][0]["file"] = "../../../etc/passwd"
    path.write_text("\n".join([json.dumps(entry), *lines[1:]]) + "\n")
    with pytest.raises(DataError, match=r"train.jsonl:1: 'recordings' must be a list of objects whose 'file' is a file name"):
        check(SLURP, root=str(slurp_copy))


@pytest.mark.parametrize(
    "options, message",
    [
        ({"num_experiences": 5}, r"num_experiences=5: must be between 1 and the number of classes \(4\)"),
        ({"class_order": ["iot", "music", "weather", "news"]}, r"\(missing: alarm; unknown: news\)"),
        ({"label": "intent", "classes_per_exp": [3, 3]}, r"classes_per_exp \[3, 3\] sums to 6 but the corpus has 7 classes"),
    ],
)
def test_slurp_protocol_errors_are_found_from_the_jsonl(slurp_root: Path, options, message) -> None:
    with pytest.raises(SpecError, match=message):
        check(SLURP, root=str(slurp_root), **options)


# ---------------------------------------------------------------- through the launcher


@pytest.mark.slow
def test_data_error_exits_2_before_any_mlflow_run(fsc_root: Path, tmp_path: Path, tracking_uri: str) -> None:
    root = copy_corpus(fsc_root, tmp_path / "fsc")
    victim = sorted((root / "wavs").rglob("*.wav"))[7]
    victim.unlink()
    spec = tmp_path / "fsc.yaml"
    spec.write_text(
        "experiment: preflight\nseeds: [0, 1]\n"
        f"scenario: {{name: fsc, root: {root}, num_experiences: 5}}\n"
        "model: {name: slu-seq2seq, preset: small}\nmethod: {name: finetune}\ntrain: {epochs: 1}\n"
        "grid:\n  method:\n    - {name: finetune}\n    - {name: replay, replay: {size: 10}}\n"
    )
    result = CliRunner().invoke(main, ["run", str(spec), "-q"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and f"{victim}: audio file not found (listed at " in lines[0] and str(spec) in lines[0]
    client = MlflowClient(tracking_uri)
    assert client.search_runs([e.experiment_id for e in client.search_experiments()]) == []
    shutil.rmtree(root)
