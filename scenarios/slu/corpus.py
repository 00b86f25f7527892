"""What every SLU loader returns: utterances per split, with a class label and a fingerprint.

FSC, SLURP and the embedded spoken-commands corpus all reduce to this, so features,
tokenizer and streams are written once.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from suite.errors import DataError
from suite.paths import exclusive_lock

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class Utterance:
    """One recording: where its audio is, who spoke, what was said and its class name.

    ``source`` is where the recording is listed (``file:line``), for error messages.
    """

    path: Path
    speaker: str
    transcript: str
    label: str
    source: str = field(default="", compare=False)


@dataclass
class Corpus:
    """Utterances per split (``train``, ``valid``, ``test``) and the metadata files that list them.

    ``checksum`` is a content checksum that stands for the corpus when there is one (the
    spoken-commands manifest's); otherwise the fingerprint is computed from the files on first use.
    """

    name: str
    root: Path
    splits: dict[str, list[Utterance]]
    metadata_files: list[Path] = field(default_factory=list)
    checksum: str | None = None

    @cached_property
    def fingerprint(self) -> str:
        """Changes whenever a metadata file or an audio file changes: the key of the feature cache."""
        return self.checksum or file_fingerprint(self.metadata_files, self.utterances())

    def utterances(self) -> list[Utterance]:
        return [u for split in SPLITS for u in self.splits[split]]

    def classes(self) -> list[str]:
        """Sorted class names seen in training; every valid/test class must be among them."""
        known = sorted({u.label for u in self.splits["train"]})
        for split in SPLITS[1:]:
            extra = sorted({u.label for u in self.splits[split]} - set(known))
            if extra:
                raise DataError(f"{self.root}: class(es) {', '.join(extra)} appear in the {split} split but never in train")
        return known


def file_fingerprint(metadata_files: Iterable[Path], utterances: Iterable[Utterance]) -> str:
    """sha256 over the metadata files' bytes and every audio file's path, size and mtime.

    Cheap enough for 30k files (a stat each, no audio read), and it changes whenever a file
    is replaced, so a stale feature cache is never read.
    """
    digest = hashlib.sha256()
    for path in metadata_files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    for utt in utterances:
        try:
            stat = utt.path.stat()
            digest.update(f"{utt.path}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{utt.path}|missing\n".encode())
    return digest.hexdigest()


def read_text(path: Path) -> str:
    """A metadata file's text; undecodable bytes are a DataError naming the file and the line.

    A byte-order mark is dropped (spreadsheet exports write one).
    """
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        byte = data[error.start]
        raise DataError(f"{path}:{line}: not valid UTF-8 (byte 0x{byte:02x} at column {column}); expected UTF-8 text") from None


def missing_audio(utterances: Iterable[Utterance]) -> list[Utterance]:
    """The utterances whose audio file does not exist (one stat each, no audio read)."""
    return [u for u in utterances if not u.path.is_file()]


def require_audio(corpus: Corpus) -> None:
    """DataError naming the first missing audio file, where it is listed, and how many are missing."""
    missing = missing_audio(corpus.utterances())
    if missing:
        first = missing[0]
        where = f" (listed at {first.source})" if first.source else ""
        total = sum(len(utts) for utts in corpus.splits.values())
        raise DataError(
            f"{first.path}: audio file not found{where}; {len(missing)} of {total} audio files are missing "
            "(set scenario.skip_bad_audio: true to skip them)"
        )


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (a sibling lock file), so parallel runs build a cache once."""
    with exclusive_lock(path.with_name(path.name + ".lock")):
        yield


@contextmanager
def staged(target: Path) -> Iterator[Path]:
    """An empty staging folder beside ``target`` that replaces it only if the block succeeds.

    A build that crashes halfway leaves the previous ``target`` (or nothing), never a torn cache.
    """
    staging = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
