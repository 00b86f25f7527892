"""Where the suite keeps derived data: a per-user cache outside any repository."""

from __future__ import annotations

import os
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
