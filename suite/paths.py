"""Where the suite keeps derived data (a per-user cache outside any repository), and how processes share it."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CACHE_ENV = "SUITE_CACHE"


def cache_root(override: str | Path | None = None) -> Path:
    """The cache root: an explicit override (spec key), else $SUITE_CACHE, else ~/.cache/suite."""
    if override:
        return Path(override).expanduser().resolve()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser().resolve()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return (base / "suite").resolve()


@contextmanager
def exclusive_lock(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_file`` (created if absent) so that parallel runs build a shared thing once."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def resolved(path: str | Path) -> Path:
    """``Path(path).expanduser().resolve()``, with a symlink loop or an unreadable component as a DataError naming the path."""
    from suite.errors import DataError

    try:
        return Path(path).expanduser().resolve()
    except (OSError, RuntimeError) as error:  # Python 3.11 raises RuntimeError on a symlink loop
        raise DataError(f"{path}: cannot resolve the path ({getattr(error, 'strerror', None) or error})") from None
