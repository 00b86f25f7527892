"""Derived files that carry a checksum: written whole, recorded when written, checked when opened.

Caches the suite derives from a user's data (a RecBole subset, a converted ``.inter``, the
SLU feature arrays) are trusted only as far as their bytes are those that were written: a
file truncated by a full disk, damaged by a failing one or edited by hand would otherwise
be trained on without a word. ``write_with_checksum`` writes a file under a temporary name,
renames it into place and then records its XXH3-128 digest beside it (``<file>.xxh3``);
``checksum_state`` says whether a file still matches its record. The record is written
last and removed first, so a build cut short leaves a file without a record (rebuilt like
any stale entry), never a record that vouches for a torn file. XXH3 reads at memory speed:
checking costs about as much as reading the file once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from enum import Enum
from pathlib import Path

import xxhash

SUFFIX = ".xxh3"
_HASH_CHUNK = 1 << 24


class ChecksumState(Enum):
    MATCHES = "matches"
    MISMATCH = "mismatch"  # the file's bytes differ from those recorded when it was written
    UNRECORDED = "unrecorded"  # no file, or no record of it (written by another version, or cut short)


def file_digest(path: Path) -> str:
    """XXH3-128 of a file's bytes, read in 16 MiB chunks (memory stays flat on a large file)."""
    digest = xxhash.xxh3_128()
    buffer = bytearray(_HASH_CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        while count := handle.readinto(buffer):
            digest.update(view[:count])
    return "xxh3_128:" + digest.hexdigest()


def checksum_file(path: Path) -> Path:
    """Where the checksum of ``path`` is recorded: ``<name>.xxh3`` beside it."""
    return path.with_name(path.name + SUFFIX)


def write_with_checksum(target: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` the file's content, rename it to ``target``, then record its checksum.

    A failure anywhere leaves no temporary file behind and no record that vouches for ``target``.
    """
    record = checksum_file(target)
    tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        digest = file_digest(tmp)
        size = tmp.stat().st_size
        record.unlink(missing_ok=True)  # from here until the new record exists, the file is unvouched for
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    record_tmp = record.with_name(f"{record.name}.tmp{os.getpid()}")
    try:
        record_tmp.write_text(json.dumps({"file": target.name, "bytes": size, "digest": digest}) + "\n")
        record_tmp.replace(record)
    finally:
        record_tmp.unlink(missing_ok=True)


def checksum_state(path: Path) -> ChecksumState:
    """Whether ``path`` holds the bytes its record says were written (size first: a truncated file costs no read)."""
    try:
        recorded = json.loads(checksum_file(path).read_text())
        size, digest = int(recorded["bytes"]), str(recorded["digest"])
    except (OSError, ValueError, KeyError, TypeError):
        return ChecksumState.UNRECORDED
    try:
        if path.stat().st_size != size or file_digest(path) != digest:
            return ChecksumState.MISMATCH
    except FileNotFoundError:
        return ChecksumState.UNRECORDED
    return ChecksumState.MATCHES
