"""The embedded spoken-commands corpus: synthesized with eSpeak NG, written in the FSC layout.

Every speaker says every phrasing of every intent; speakers are split disjointly into
train/valid/test (see ``grammar.speakers``). All choices (voices, pitches and rates, eSpeak's noise
seed per utterance) come from ``seed``, and every utterance is synthesized as the first
synthesis of a fresh process, so one seed gives byte-identical files on every machine run.
A ``manifest.json`` records counts and sha256 checksums; a corpus whose files all match it is
reused, anything else is rebuilt.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile
import torch

from scenarios.slu import grammar
from scenarios.slu.audio import TARGET_RATE, resample, single_thread, to_pcm16
from scenarios.slu.corpus import SPLITS, locked, staged
from scenarios.slu.corpus_spec import FORMAT, CorpusSpec
from scenarios.slu.espeak import SAMPLE_RATE as ESPEAK_RATE
from scenarios.slu.espeak import SynthJob, synthesize
from suite.errors import DataError
from suite.progress import progress

MANIFEST = "manifest.json"
HEADER = ["", "path", "speakerId", "transcription", "action", "object", "location"]


@dataclass(frozen=True)
class Planned:
    """One utterance of the plan: its split, relative wav path, speaker and intent."""

    split: str
    relpath: str
    speaker: grammar.Speaker
    intent: grammar.Intent
    text: str
    seed: int


def corpus_dir(cache_root: Path, spec: CorpusSpec) -> Path:
    """Where the corpus for ``spec`` lives under the cache root."""
    return Path(cache_root) / "spoken-commands" / f"g{grammar.GRAMMAR_VERSION}-{spec.key()}"


def ensure_corpus(cache_root: Path, spec: CorpusSpec, workers: int = 2, quiet: bool = False) -> tuple[Path, dict]:
    """The corpus directory and its manifest: reused when intact, (re)built otherwise."""
    spec.check()
    target = corpus_dir(cache_root, spec)
    with locked(target):
        manifest = verify_corpus(target, spec)
        if manifest is not None:
            return target, manifest
        with staged(target) as staging:
            synthesize_corpus(staging, spec, workers=workers, quiet=quiet)
        manifest = verify_corpus(target, spec)
    if manifest is None:
        raise DataError(f"{target}: freshly synthesized corpus does not match its manifest")
    return target, manifest


def plan(spec: CorpusSpec) -> list[Planned]:
    """Every utterance, split by speaker, in a fixed order."""
    speakers = grammar.speakers(spec.speakers, spec.seed)
    held_out = grammar.held_out_order(speakers)
    split_of = {s.speaker_id: "test" for s in held_out[: spec.test_speakers]}
    split_of.update({s.speaker_id: "valid" for s in held_out[spec.test_speakers : spec.test_speakers + spec.valid_speakers]})
    planned = []
    for speaker in speakers:
        for i, intent in enumerate(grammar.intents(spec.intents)):
            for p, text in enumerate(grammar.phrasings(intent, spec.phrasings_per_intent)):
                utt_id = f"{speaker.speaker_id}-i{i:02d}p{p}"
                seed = zlib.crc32(f"{spec.seed}/{utt_id}".encode())
                relpath = f"wavs/speakers/{speaker.speaker_id}/{utt_id}.wav"
                planned.append(Planned(split_of.get(speaker.speaker_id, "train"), relpath, speaker, intent, text, seed))
    return planned


def synthesize_corpus(out_dir: Path, spec: CorpusSpec, workers: int = 2, quiet: bool = False) -> dict:
    """Write the corpus (CSVs, wavs, manifest) into ``out_dir``; returns the manifest."""
    spec.check()
    out_dir = Path(out_dir)
    utterances = plan(spec)
    jobs = [SynthJob(u.text, u.speaker.voice, u.speaker.pitch, u.speaker.rate, u.seed) for u in utterances]
    checksums: dict[str, str] = {}
    synthesized = progress(synthesize(jobs, workers=workers), desc="synthesizing spoken commands", total=len(jobs), quiet=quiet)
    with single_thread():
        for index, samples in synthesized:
            checksums[utterances[index].relpath] = _write_wav(out_dir / utterances[index].relpath, samples)
    for split in SPLITS:
        relpath = f"data/{split}_data.csv"
        checksums[relpath] = _write_csv(out_dir / relpath, [u for u in utterances if u.split == split])
    manifest = _manifest(spec, utterances, checksums)
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return manifest


def _write_wav(path: Path, samples: np.ndarray) -> str:
    waveform = resample(torch.from_numpy(samples.astype(np.float32) / 32768.0), ESPEAK_RATE, TARGET_RATE)
    buffer = io.BytesIO()
    soundfile.write(buffer, to_pcm16(waveform), TARGET_RATE, format="WAV", subtype="PCM_16")
    data = buffer.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _write_csv(path: Path, rows: list[Planned]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HEADER)
    for index, u in enumerate(rows):
        transcript = u.text[0].upper() + u.text[1:]
        writer.writerow([index, u.relpath, u.speaker.speaker_id, transcript, u.intent.action, u.intent.object, u.intent.location])
    data = buffer.getvalue().encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _manifest(spec: CorpusSpec, utterances: list[Planned], checksums: dict[str, str]) -> dict:
    files = dict(sorted(checksums.items()))
    return {
        "format": FORMAT,
        "grammar_version": grammar.GRAMMAR_VERSION,
        "spec": asdict(spec),
        "counts": {
            "utterances": {s: sum(u.split == s for u in utterances) for s in SPLITS},
            "speakers": {s: len({u.speaker.speaker_id for u in utterances if u.split == s}) for s in SPLITS},
            "intents": len(grammar.intents(spec.intents)),
            "phrasings_per_intent": spec.phrasings_per_intent,
        },
        "speakers": {
            u.speaker.speaker_id: {"voice": u.speaker.voice, "pitch": u.speaker.pitch, "rate": u.speaker.rate, "split": u.split}
            for u in utterances
        },
        "files": files,
        "checksum": _checksum(files),
    }


def _checksum(files: dict[str, str]) -> str:
    return hashlib.sha256("".join(f"{path} {digest}\n" for path, digest in sorted(files.items())).encode()).hexdigest()


def verify_corpus(directory: Path, spec: CorpusSpec | None = None) -> dict | None:
    """The manifest if every listed file is present with its checksum (and the spec matches), else None."""
    try:
        manifest = json.loads((Path(directory) / MANIFEST).read_text())
        files = manifest["files"]
        if manifest.get("format") != FORMAT or manifest["checksum"] != _checksum(files):
            return None
        if spec is not None and manifest["spec"] != asdict(spec):
            return None
        for relpath, digest in files.items():
            if hashlib.sha256((Path(directory) / relpath).read_bytes()).hexdigest() != digest:
                return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return manifest
