"""The embedded spoken-commands corpus: grammar, synthesis, determinism, manifest and reuse."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
from slu_fixtures import TINY_SPEC, build_fsc_corpus

from scenarios.slu import grammar
from scenarios.slu.espeak import SynthJob, synthesize
from scenarios.slu.fsc import load_fsc
from scenarios.slu.spoken_commands import MANIFEST, CorpusSpec, corpus_dir, ensure_corpus, plan, verify_corpus
from suite.errors import DataError


def test_grammar_meets_its_promises() -> None:
    grammar.check()
    assert len(grammar.intents()) >= 30
    assert all(len(set(texts)) >= 6 for texts in grammar.GRAMMAR.values())
    speakers = grammar.speakers(12, seed=0)
    assert len({(s.voice, s.pitch, s.rate) for s in speakers}) == 12
    assert grammar.speakers(12, seed=0) == speakers and grammar.speakers(12, seed=1) != speakers


def test_default_corpus_plan_is_large_enough_and_speaker_disjoint() -> None:
    utterances = plan(CorpusSpec())
    by_split = {split: {u.speaker.speaker_id for u in utterances if u.split == split} for split in ("train", "valid", "test")}
    assert sum(map(len, by_split.values())) >= 12
    assert not (by_split["train"] & by_split["valid"] or by_split["train"] & by_split["test"] or by_split["valid"] & by_split["test"])
    assert len({u.intent for u in utterances}) >= 30
    assert len(utterances) == len({u.relpath for u in utterances})


def test_synthesis_is_reproducible_to_the_byte() -> None:
    jobs = [SynthJob("turn on the kitchen lights", "en-us+f2", 60, 170, 1), SynthJob("bring me the socks", "en+whisper", 40, 150, 2)]
    first = dict(synthesize(jobs))
    second = dict(synthesize(list(reversed(jobs))))
    assert first[0].dtype == np.int16 and len(first[0]) > 22050 // 2
    assert first[0].tobytes() == second[1].tobytes()
    assert first[1].tobytes() == second[0].tobytes()
    assert np.abs(first[0].astype(np.float32)).max() > 1000  # speech, not silence


def test_refused_voice_is_a_clear_error() -> None:
    with pytest.raises(DataError, match="could not synthesize 'hello' with voice en-gb: .*refused voice"):
        list(synthesize([SynthJob("hello", "en-gb", 50, 170, 0)]))


def test_fixture_corpus_has_the_fsc_layout(fsc_root: Path) -> None:
    with (fsc_root / "data" / "train_data.csv").open() as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["", "path", "speakerId", "transcription", "action", "object", "location"]
    info = soundfile.info(str(fsc_root / rows[1][1]))
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    assert rows[1][1] == f"wavs/speakers/{rows[1][2]}/{Path(rows[1][1]).name}"


def test_splits_are_speaker_disjoint(fsc_root: Path) -> None:
    corpus = load_fsc(fsc_root)
    speakers = {split: {u.speaker for u in utts} for split, utts in corpus.splits.items()}
    assert [len(speakers[s]) for s in ("train", "valid", "test")] == [3, 1, 1]
    assert not (speakers["train"] & speakers["valid"]) and not (speakers["train"] & speakers["test"])
    assert not (speakers["valid"] & speakers["test"])
    assert len(corpus.classes()) == 5


def test_same_seed_gives_byte_identical_files(fsc_root: Path, tmp_path: Path) -> None:
    again = build_fsc_corpus(tmp_path / "again")
    files = sorted(p.relative_to(fsc_root) for p in fsc_root.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert len([f for f in files if f.suffix == ".wav"]) == 50
    for relpath in files:
        assert (fsc_root / relpath).read_bytes() == (again / relpath).read_bytes(), relpath


def test_manifest_records_counts_and_checksums(fsc_root: Path) -> None:
    manifest = json.loads((fsc_root / MANIFEST).read_text())
    assert manifest["counts"]["utterances"] == {"train": 30, "valid": 10, "test": 10}
    assert manifest["counts"]["speakers"] == {"train": 3, "valid": 1, "test": 1}
    assert len(manifest["files"]) == 50 + 3
    assert verify_corpus(fsc_root, TINY_SPEC) == manifest
    assert verify_corpus(fsc_root, CorpusSpec(seed=1)) is None  # built from another spec


def test_corpus_is_reused_when_intact_and_rebuilt_when_not(tmp_path: Path) -> None:
    spec = CorpusSpec(seed=3, speakers=3, valid_speakers=1, test_speakers=1, phrasings_per_intent=1, intents=2)
    directory, manifest = ensure_corpus(tmp_path, spec)
    assert directory == corpus_dir(tmp_path, spec)
    wav = directory / next(p for p in manifest["files"] if p.endswith(".wav"))
    stamp = wav.stat().st_mtime_ns
    assert ensure_corpus(tmp_path, spec)[1] == manifest
    assert wav.stat().st_mtime_ns == stamp  # reused, not re-synthesized

    original = wav.read_bytes()
    wav.write_bytes(original[:100])  # damaged
    assert verify_corpus(directory, spec) is None
    rebuilt_dir, rebuilt = ensure_corpus(tmp_path, spec)
    assert rebuilt["checksum"] == manifest["checksum"]
    assert (rebuilt_dir / wav.relative_to(directory)).read_bytes() == original


def test_held_out_speakers_are_new_people_with_voice_kinds_heard_in_training() -> None:
    """Valid and test speakers are disjoint from train, hold both genders, and each shares its
    eSpeak variant (timbre) with a training speaker, so the splits test speaker generalization
    rather than an unheard kind of voice."""
    utterances = plan(CorpusSpec())
    speakers = {split: {u.speaker for u in utterances if u.split == split} for split in ("train", "valid", "test")}
    assert len(speakers["train"]) == 8 and len(speakers["valid"]) == 2 and len(speakers["test"]) == 2
    variant = lambda speaker: speaker.voice.split("+")[1]  # noqa: E731
    train_variants = {variant(s) for s in speakers["train"]}
    for split in ("valid", "test"):
        assert not speakers[split] & speakers["train"]
        assert {variant(s)[0] for s in speakers[split]} == {"f", "m"}
        assert {variant(s) for s in speakers[split]} <= train_variants
    assert {variant(s)[0] for s in speakers["train"]} == {"f", "m"}


def test_too_many_speakers_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="at most 40 speakers"):
        grammar.speakers(41, seed=0)
    with pytest.raises(DataError, match="speakers=41, at most 40 synthetic speakers exist"):
        CorpusSpec(speakers=41).check()


def _plan_digest(spec: CorpusSpec) -> str:
    rows = [(u.split, u.relpath, u.speaker.voice, u.speaker.pitch, u.speaker.rate, u.text, u.seed) for u in plan(spec)]
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def test_the_default_corpus_is_the_one_cached_before_speakers_21_to_40_existed() -> None:
    """Cached default corpora stay valid: same key and same plan (speakers, texts, noise seeds) as grammar v2 gave.

    If this fails on purpose, bump GRAMMAR_VERSION (it is part of the corpus key) and update both values.
    """
    assert (grammar.GRAMMAR_VERSION, CorpusSpec().key()) == (2, "fe5e5e6d1a4a2f43")
    assert _plan_digest(CorpusSpec()) == "c95e3428f172d006e7c863bc33cc97d62ac6ae4d484a99f558f9c48c2965423a"


def test_a_larger_corpus_extends_a_smaller_one() -> None:
    for seed in (0, 1):
        assert grammar.speakers(40, seed)[:12] == grammar.speakers(12, seed)
        assert grammar.speakers(40, seed)[:20] == grammar.speakers(20, seed)


def test_study_sized_corpus_has_power_distinct_speakers_and_balanced_splits() -> None:
    """40 speakers, 8 test and 4 valid: >= 1,000 test utterances, thousands to train on, both genders everywhere."""
    spec = CorpusSpec(speakers=40, valid_speakers=4, test_speakers=8, phrasings_per_intent=6)
    spec.check()
    utterances = plan(spec)
    speakers = {split: {u.speaker for u in utterances if u.split == split} for split in ("train", "valid", "test")}
    counts = {split: sum(u.split == split for u in utterances) for split in speakers}
    assert [len(speakers[s]) for s in ("train", "valid", "test")] == [28, 4, 8]
    assert counts == {"train": 28 * 32 * 6, "valid": 4 * 32 * 6, "test": 8 * 32 * 6} and counts["test"] >= 1000
    everyone = grammar.speakers(40, seed=0)
    assert len({(s.voice, s.pitch, s.rate) for s in everyone}) == 40 and len({s.speaker_id for s in everyone}) == 40
    assert sum(s.female for s in everyone) == 20
    variant = lambda speaker: speaker.voice.split("+")[1]  # noqa: E731
    for split in ("valid", "test"):
        assert not speakers[split] & speakers["train"]
        assert {s.female for s in speakers[split]} == {True, False}
        assert {variant(s) for s in speakers[split]} <= {variant(s) for s in speakers["train"]}
    assert {s.female for s in speakers["train"]} == {True, False}
    assert not speakers["valid"] & speakers["test"]


def test_every_voice_variant_is_accepted_by_the_engine() -> None:
    """The 40 speakers use these variants; a name the library refuses would fail a study-sized build late."""
    variants = grammar.VARIANTS + grammar.NAMED_FEMALE + grammar.NAMED_MALE
    jobs = [SynthJob("lights on", f"en-us+{variant}", 50, 170, 0) for variant in variants]
    samples = dict(synthesize(jobs))
    assert len(samples) == len(variants) and all(len(s) > 4000 for s in samples.values())
    assert len({samples[i].tobytes() for i in range(len(variants))}) == len(variants)  # each variant sounds different
