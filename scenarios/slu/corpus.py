"""What every SLU loader returns: utterances per split, with a class label and a fingerprint.

FSC, SLURP and the embedded spoken-commands corpus all reduce to this, so features,
tokenizer and streams are written once.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from suite.errors import DataError

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class Utterance:
    """One recording: where its audio is, who spoke, what was said and its class name."""

    path: Path
    speaker: str
    transcript: str
    label: str


@dataclass
class Corpus:
    """Utterances per split (``train``, ``valid``, ``test``) and a fingerprint of the files they come from."""

    name: str
    root: Path
    splits: dict[str, list[Utterance]]
    fingerprint: str

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


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (a sibling lock file), so parallel runs build a cache once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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
