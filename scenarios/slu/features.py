"""Log-mel filterbank features, computed once per corpus and cached on disk.

Features are Kaldi-style log-mel filterbanks from torchaudio (no dither, so they are a pure
function of the audio), normalized per bin with the *training* split's mean and variance.
The cache entry is keyed by the corpus fingerprint and the feature parameters; each split is
one ``.npy`` of stacked frames plus an offsets array, memory-mapped on load. ``meta.json``
records an xxHash (XXH3-128) of every array when it is written, and every build that opens
the cache checks them first: a damaged array (a disk error, a stray write) is rebuilt, never
trained on. XXH3 reads at memory speed, so the check costs about as much as reading the
arrays once (``suite.checksums`` holds the digest, shared with the RecBole caches).
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torchaudio.compliance.kaldi as kaldi

from scenarios.slu.audio import TARGET_RATE, read_audio, single_thread
from scenarios.slu.corpus import SPLITS, Corpus, locked, staged
from suite.api import FeatureOptions
from suite.checksums import file_digest
from suite.errors import DataError
from suite.progress import progress

FEATURE_VERSION = 1
ARRAYS = tuple(f"{split}{suffix}" for split in SPLITS for suffix in (".npy", "_offsets.npy", "_kept.npy"))
SKIPPED_SHOWN = 5  # how many skipped files a summary names


@dataclass
class SplitFeatures:
    """Frames of one split stacked as [total_frames, n_mels]; utterance i is ``frames[offsets[i]:offsets[i+1]]``.

    ``kept[i]`` is the position, in the corpus split, of the utterance stored at i (skipped
    audio leaves gaps).
    """

    frames: np.ndarray
    offsets: np.ndarray
    kept: np.ndarray

    def __len__(self) -> int:
        return len(self.kept)

    def get(self, index: int) -> torch.Tensor:
        """A writable float32 copy of utterance ``index``'s frames [T, n_mels]."""
        start, end = int(self.offsets[index]), int(self.offsets[index + 1])
        return torch.from_numpy(np.array(self.frames[start:end], dtype=np.float32))


@dataclass
class FeatureSet:
    """Every split's features, the audio that was skipped and where the cache entry lives."""

    splits: dict[str, SplitFeatures]
    skipped: dict[str, str]  # audio path -> reason
    cache_dir: Path
    from_cache: bool
    stats: dict[str, list[float]] = field(default_factory=dict)


def fbank(waveform: torch.Tensor, options: FeatureOptions) -> torch.Tensor:
    """[T, n_mels] log-mel filterbank of a 16 kHz mono waveform in [-1, 1]."""
    return kaldi.fbank(
        waveform.unsqueeze(0) * 32768.0,
        num_mel_bins=options.n_mels,
        frame_length=options.win_ms,
        frame_shift=options.hop_ms,
        dither=0.0,
        energy_floor=0.0,
        sample_frequency=TARGET_RATE,
    )


def cache_key(corpus: Corpus, options: FeatureOptions) -> str:
    """Corpus fingerprint + feature parameters + code version -> hex key."""
    payload = json.dumps({"corpus": corpus.fingerprint, "features": options.model_dump(), "version": FEATURE_VERSION}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def load_or_compute(
    corpus: Corpus, options: FeatureOptions, cache_root: Path, skip_bad_audio: bool = False, quiet: bool = False
) -> FeatureSet:
    """Read the features from the cache, or compute and store them; bad audio per ``skip_bad_audio``.

    Skipped audio is announced on stderr (count and first paths) whether built or read back.
    """
    directory = cache_root / "slu-features" / f"{corpus.name}-{cache_key(corpus, options)[:24]}"
    with locked(directory):
        try:
            cached = _read_cache(directory, corpus)
        except CorruptCache as error:
            print(f"{error}; rebuilding the features", file=sys.stderr, flush=True)
            cached = None
        if cached is not None:
            _refuse_skipped(cached.skipped, skip_bad_audio)
            _announce_skipped(corpus.name, cached.skipped)
            return cached
        with staged(directory) as staging, single_thread():
            skipped, stats = _compute_into(staging, corpus, options, skip_bad_audio, quiet)
            _normalize_into(staging, options.n_mels, stats)
            _write_meta(staging, corpus, options, stats, skipped)
        try:
            result = _read_cache(directory, corpus)
        except CorruptCache as error:
            raise DataError(f"{error} (just after writing it: is the disk full or failing?)") from None
    if result is None:
        raise DataError(f"{directory}: feature cache could not be read back after writing it")
    result.from_cache = False
    _announce_skipped(corpus.name, result.skipped)
    return result


def skipped_summary(skipped: dict[str, str], limit: int = SKIPPED_SHOWN) -> str:
    """'N unreadable audio file(s) skipped: path (reason); ... and M more': one line for a log."""
    shown = [f"{path} ({_reason(path, reason)})" for path, reason in sorted(skipped.items())[:limit]]
    more = f"; and {len(skipped) - limit} more" if len(skipped) > limit else ""
    return f"{len(skipped)} unreadable audio file(s) skipped (scenario.skip_bad_audio): {'; '.join(shown)}{more}"


def _reason(path: str, reason: str) -> str:
    """The reason without the path it starts with (read_audio's messages name the file first)."""
    return reason[len(path) + 2 :] if reason.startswith(f"{path}: ") else reason


def _announce_skipped(name: str, skipped: dict[str, str]) -> None:
    if skipped:
        print(f"{name}: {skipped_summary(skipped)}", file=sys.stderr, flush=True)


def _compute_into(staging: Path, corpus: Corpus, options: FeatureOptions, skip_bad_audio: bool, quiet: bool = False):
    """Stream every split's raw features to ``<split>.raw`` (memory stays flat, whatever the corpus size)."""
    skipped: dict[str, str] = {}
    totals = np.zeros((2, options.n_mels), np.float64)  # sum, sum of squares over training frames
    n_train = 0
    for split in SPLITS:
        lengths, kept = [], []
        with open(staging / f"{split}.raw", "wb") as out:
            for position, utt in enumerate(progress(corpus.splits[split], desc=f"features {corpus.name}/{split}", quiet=quiet)):
                try:
                    feats = _utterance_features(utt.path, options)
                except DataError as error:
                    if not skip_bad_audio:
                        raise DataError(f"{error} (set scenario.skip_bad_audio: true to skip unreadable files)") from None
                    skipped[str(utt.path)] = str(error)
                    continue
                out.write(feats.tobytes())
                lengths.append(len(feats))
                kept.append(position)
                if split == "train":
                    totals += np.stack([feats.sum(0, dtype=np.float64), np.square(feats, dtype=np.float64).sum(0)])
                    n_train += len(feats)
        np.save(staging / f"{split}_offsets.npy", np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int64))
        np.save(staging / f"{split}_kept.npy", np.asarray(kept, np.int64))
    if n_train == 0:
        raise DataError(f"{corpus.root}: no readable training audio")
    return skipped, _stats(totals, n_train, options.normalize)


def _utterance_features(path: Path, options: FeatureOptions) -> np.ndarray:
    feats = fbank(read_audio(path), options)
    if feats.shape[0] == 0:
        raise DataError(f"{path}: audio shorter than one {options.win_ms} ms analysis window")
    return np.ascontiguousarray(feats.numpy(), dtype=np.float32)


def _stats(totals: np.ndarray, count: int, normalize: bool) -> dict[str, list[float]]:
    """Per-bin mean and std of the training frames (identity when normalization is off)."""
    if not normalize:
        return {"mean": [0.0] * totals.shape[1], "std": [1.0] * totals.shape[1]}
    mean = totals[0] / count
    std = np.sqrt(np.maximum(totals[1] / count - mean**2, 0.0))
    return {"mean": mean.tolist(), "std": np.maximum(std, 1e-5).tolist()}


def _normalize_into(staging: Path, n_mels: int, stats: dict[str, list[float]], chunk: int = 1 << 16) -> None:
    """``<split>.raw`` -> normalized ``<split>.npy``, chunk by chunk."""
    mean, std = np.asarray(stats["mean"], np.float32), np.asarray(stats["std"], np.float32)
    for split in SPLITS:
        raw_path = staging / f"{split}.raw"
        total = raw_path.stat().st_size // (4 * n_mels)
        out = np.lib.format.open_memmap(staging / f"{split}.npy", mode="w+", dtype=np.float32, shape=(total, n_mels))
        if total:
            raw = np.memmap(raw_path, dtype=np.float32, mode="r", shape=(total, n_mels))
            for start in range(0, total, chunk):
                out[start : start + chunk] = (raw[start : start + chunk] - mean) / std
            del raw
        out.flush()
        del out
        raw_path.unlink()


def _write_meta(staging: Path, corpus: Corpus, options: FeatureOptions, stats, skipped) -> None:
    meta = {
        "corpus": corpus.name,
        "root": str(corpus.root),
        "fingerprint": corpus.fingerprint,
        "features": options.model_dump(),
        "version": FEATURE_VERSION,
        "stats": stats,
        "skipped": skipped,
        "counts": {split: len(corpus.splits[split]) for split in SPLITS},
        "checksums": {name: file_digest(staging / name) for name in ARRAYS},
    }
    (staging / "meta.json").write_text(json.dumps(meta, indent=1))


class CorruptCache(Exception):
    """A cached array no longer matches the checksum recorded when it was written."""


def _read_cache(directory: Path, corpus: Corpus) -> FeatureSet | None:
    """The cached features, or None if absent, incomplete or built from other files.

    Raises CorruptCache when an array's bytes differ from the checksum in ``meta.json``.
    """
    try:
        meta = json.loads((directory / "meta.json").read_text())
        if meta["fingerprint"] != corpus.fingerprint or meta["counts"] != {s: len(corpus.splits[s]) for s in SPLITS}:
            return None
        _verify_checksums(directory, meta["checksums"])
        splits = {split: _load_split(directory, split) for split in SPLITS}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return FeatureSet(splits=splits, skipped=meta["skipped"], cache_dir=directory, from_cache=True, stats=meta["stats"])


def _verify_checksums(directory: Path, checksums: dict[str, str]) -> None:
    if sorted(checksums) != sorted(ARRAYS):
        raise KeyError("checksums")  # written by another version: rebuilt like any stale entry
    for name in ARRAYS:
        if file_digest(directory / name) != checksums[name]:
            raise CorruptCache(f"feature cache {directory}: {name} does not match the checksum recorded when it was written")


def _load_split(directory: Path, split: str) -> SplitFeatures:
    try:
        frames = np.load(directory / f"{split}.npy", mmap_mode="r")
    except ValueError:  # an empty split cannot be memory-mapped
        frames = np.load(directory / f"{split}.npy")
    offsets = np.load(directory / f"{split}_offsets.npy")
    kept = np.load(directory / f"{split}_kept.npy")
    if len(offsets) != len(kept) + 1 or int(offsets[-1]) != frames.shape[0]:
        raise ValueError(f"{directory}: {split} arrays disagree")
    return SplitFeatures(frames=frames, offsets=offsets, kept=kept)


def _refuse_skipped(skipped: dict[str, str], skip_bad_audio: bool) -> None:
    if skipped and not skip_bad_audio:
        first = next(iter(skipped.values()))
        raise DataError(f"{first} ({len(skipped)} unreadable audio file(s); set scenario.skip_bad_audio: true to skip them)")
