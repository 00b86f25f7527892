"""A plugin's ``SpeechCorpus`` (the public, simple contract) as the SLU loaders' ``Corpus``.

Paths are taken as they are; waveforms are written once as 32-bit float WAV files into the
cache, in a folder named after their content, each with a checksum that is checked on every
use (a damaged file is written again), so features are computed from files like any corpus's.
The corpus checksum covers every utterance's split, speaker, transcript, label and audio file
(path, size, mtime): moving an utterance to another split or relabelling it gives another
feature cache entry, never a stale one.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import soundfile

from scenarios.slu.corpus import SPLITS, Corpus, Utterance, locked
from suite.api import DataError, SpeechCorpus, SpeechUtterance
from suite.checksums import ChecksumState, checksum_state, write_with_checksum

WAVEFORM_FOLDER = "speech-corpus-waveforms"


def corpus_from_speech(speech: SpeechCorpus, cache_dir: Path) -> Corpus:
    """The loaders' ``Corpus`` for ``speech``; waveforms written under ``cache_dir`` (once, by content)."""
    paths = _audio_paths(speech, Path(cache_dir))
    splits: dict[str, list[Utterance]] = {split: [] for split in SPLITS}
    for index, (utterance, path) in enumerate(zip(speech.utterances, paths)):
        source = f"{speech.name} utterance {index}"
        splits[utterance.split].append(Utterance(path, str(utterance.speaker), utterance.transcript, utterance.label, source))
    root = Path(os.path.commonpath([str(path.parent) for path in paths])) if paths else Path(cache_dir)
    return Corpus(name=speech.name, root=root, splits=splits, checksum=_checksum(splits))


def _audio_paths(speech: SpeechCorpus, cache_dir: Path) -> list[Path]:
    waveforms = [(index, u) for index, u in enumerate(speech.utterances) if not isinstance(u.audio, (str, Path))]
    paths = [Path(u.audio).expanduser().resolve() if isinstance(u.audio, (str, Path)) else None for u in speech.utterances]
    if waveforms:
        folder = cache_dir / WAVEFORM_FOLDER / _waveforms_digest(waveforms)
        with locked(folder):
            for index, utterance in waveforms:
                paths[index] = _written(folder / f"{index:07d}.wav", utterance)
    return paths


def _waveforms_digest(waveforms: list[tuple[int, SpeechUtterance]]) -> str:
    digest = hashlib.sha256()
    for index, utterance in waveforms:
        samples = _mono(index, utterance)
        digest.update(f"{index}|{utterance.sample_rate}|{samples.size}\n".encode() + samples.tobytes())
    return digest.hexdigest()[:24]


def _mono(index: int, utterance: SpeechUtterance) -> np.ndarray:
    samples = np.asarray(utterance.audio, dtype=np.float32)
    if samples.ndim != 1 or samples.size == 0:
        raise DataError(f"utterance {index}: audio is an array of shape {samples.shape}, expected a non-empty 1-D mono waveform")
    return samples


def _written(path: Path, utterance: SpeechUtterance) -> Path:
    """The waveform's file, written (again) unless it is there and matches the checksum recorded with it."""
    if checksum_state(path) is not ChecksumState.MATCHES:
        path.parent.mkdir(parents=True, exist_ok=True)
        samples = np.asarray(utterance.audio, dtype=np.float32)
        write_with_checksum(path, lambda tmp: soundfile.write(tmp, samples, utterance.sample_rate, subtype="FLOAT", format="WAV"))
    return path


def _checksum(splits: dict[str, list[Utterance]]) -> str:
    digest = hashlib.sha256()
    for split in SPLITS:
        for u in splits[split]:
            try:
                stat = u.path.stat()
                version = f"{stat.st_size}|{stat.st_mtime_ns}"
            except OSError:
                version = "missing"
            digest.update(f"{split}|{u.path}|{version}|{u.speaker}|{u.label}|{u.transcript}\n".encode())
    return digest.hexdigest()
