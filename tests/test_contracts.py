"""The scenario contracts of suite.api: what each family's build() may return, and how plain data becomes a scenario."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scenarios.recsys.atomic import AtomicFields
from scenarios.recsys.entries import RECBOLE, RecBoleScenarioOptions
from scenarios.recsys.table import scenario_from_table, write_table
from scenarios.slu.entries import FSC
from scenarios.slu.options import FSCOptions
from scenarios.slu.speech_corpus import corpus_from_speech
from suite.api import (
    BuildContext,
    ContinualScenario,
    DataError,
    InteractionProtocolOptions,
    InteractionTable,
    NoOptions,
    SequentialScenario,
    SpecError,
    SpeechCorpus,
    SpeechScenarioOptions,
    SpeechUtterance,
)
from suite.contracts import check_built


def context(tmp_path: Path) -> BuildContext:
    return BuildContext(seed=0, cache_dir=tmp_path / "cache", run_dir=tmp_path / "run")


def test_the_built_in_scenarios_fulfil_their_family_contracts(fsc_root, tmp_path):
    continual = FSC.build(FSCOptions(root=str(fsc_root), num_experiences=2, features={"n_mels": 40}), context(tmp_path))
    sequential = RECBOLE.build(RecBoleScenarioOptions(max_users=20), context(tmp_path))
    assert isinstance(continual, ContinualScenario) and isinstance(sequential, SequentialScenario)
    check_built("fsc", "continual", continual, None)
    check_built("recbole", "sequential", sequential, None)


def utterance(split: str, label: str = "lights_on", audio=None, speaker: str = "s1") -> SpeechUtterance:
    waveform = np.sin(np.linspace(0, 200, 8000, dtype=np.float32)) if audio is None else audio
    return SpeechUtterance(audio=waveform, speaker=speaker, transcript=label.replace("_", " "), label=label, split=split)


def three_splits(**changes) -> SpeechCorpus:
    return SpeechCorpus("waves", [utterance(split, **changes) for split in ("train", "valid", "test")])


def test_waveforms_are_written_once_by_content_and_the_checksum_follows_labels(tmp_path):
    first = corpus_from_speech(three_splits(), tmp_path)
    paths = [u.path for u in first.utterances()]
    assert all(path.is_file() and path.suffix == ".wav" for path in paths)
    stamps = [path.stat().st_mtime_ns for path in paths]
    again = corpus_from_speech(three_splits(), tmp_path)
    assert [u.path for u in again.utterances()] == paths and [p.stat().st_mtime_ns for p in paths] == stamps
    assert again.fingerprint == first.fingerprint
    relabelled = corpus_from_speech(three_splits(label="lights_off"), tmp_path)
    assert relabelled.fingerprint != first.fingerprint


@pytest.mark.parametrize(
    ("corpus", "options", "error", "words"),
    [
        (SpeechCorpus("x", [utterance("train"), utterance("dev")]), SpeechScenarioOptions(), SpecError, "split 'dev'"),
        (SpeechCorpus("x", [utterance("train"), utterance("valid")]), SpeechScenarioOptions(), SpecError, "no utterance in the test"),
        (three_splits(), NoOptions(), SpecError, "subclass suite.api.SpeechScenarioOptions"),
    ],
)
def test_a_speech_corpus_that_breaks_the_contract_is_named(corpus, options, error, words):
    with pytest.raises(error, match=words):
        check_built("mine", "continual", corpus, options)


def test_a_waveform_must_be_one_dimensional(tmp_path):
    with pytest.raises(DataError, match=r"utterance 0: audio is an array of shape \(2, 10\)"):
        corpus_from_speech(SpeechCorpus("x", [utterance("train", audio=np.zeros((2, 10)))]), tmp_path)


def clicks(users: int = 12, steps: int = 6) -> pd.DataFrame:
    rows = [(f"u{u}", f"i{(u * 5 + s) % 17}", 1000 + s) for u in range(users) for s in range(steps)]
    return pd.DataFrame(rows, columns=["user", "item", "ts"])


def test_a_table_becomes_a_recbole_scenario_with_the_plugin_protocol(tmp_path):
    table = InteractionTable("clicks", frame=clicks(), user_field="user", item_field="item", time_field="ts")
    scenario = scenario_from_table(table, InteractionProtocolOptions(max_seq_length=7), context(tmp_path))
    fragment = scenario.config_fragment()
    assert fragment["MAX_ITEM_LIST_LENGTH"] == 7 and fragment["USER_ID_FIELD"] == "user" and fragment["TIME_FIELD"] == "ts"
    assert scenario.dataset.users == 12 and scenario.dataset.interactions == 72
    assert scenario.dataset.inter_file.read_text().splitlines()[0] == "user:token\titem:token\tts:float"


def test_a_damaged_table_copy_is_written_again(tmp_path):
    fields = AtomicFields("user", "item", "ts")
    folder = write_table(clicks().astype(str), "clicks", fields, tmp_path)
    copy = folder / f"{folder.name}.inter"
    whole = copy.read_bytes()
    copy.write_bytes(whole[: len(whole) // 2])
    assert write_table(clicks().astype(str), "clicks", fields, tmp_path) == folder
    assert copy.read_bytes() == whole


@pytest.mark.parametrize(
    ("table", "error", "words"),
    [
        (InteractionTable("t"), SpecError, "exactly one of frame"),
        (InteractionTable("t", frame=clicks()[["user", "item"]], user_field="user", item_field="item"), SpecError, "no column"),
        (InteractionTable("t", frame=[1, 2]), SpecError, "expected a pandas DataFrame"),
    ],
)
def test_a_table_that_breaks_the_contract_is_named(table, error, words):
    with pytest.raises(error, match=words):
        check_built("mine", "sequential", table, None)


@pytest.mark.parametrize(
    ("frame", "words"),
    [
        (clicks().assign(item="a\tb"), "holds a tab or newline"),
        (clicks().assign(ts="soon"), "ts 'soon' is not a number"),
    ],
)
def test_table_values_recbole_would_misread_are_refused(tmp_path, frame, words):
    table = InteractionTable("clicks", frame=frame, user_field="user", item_field="item", time_field="ts")
    with pytest.raises(DataError, match=words):
        scenario_from_table(table, None, context(tmp_path))
