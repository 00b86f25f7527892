"""Progress bars that show on a terminal and stay silent in logs, CI and ``--quiet`` runs."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import TypeVar

from tqdm.auto import tqdm

QUIET_ENV = "SUITE_QUIET"
T = TypeVar("T")


def set_quiet(quiet: bool) -> None:
    """Quiet is kept in the environment so that worker processes (Ray, forks) inherit it."""
    if quiet:
        os.environ[QUIET_ENV] = "1"
    else:
        os.environ.pop(QUIET_ENV, None)


def is_quiet() -> bool:
    return os.environ.get(QUIET_ENV) == "1" or not sys.stderr.isatty()


def progress(iterable: Iterable[T], desc: str, total: int | None = None, leave: bool = False) -> Iterable[T]:
    """Wrap a long loop; a plain iterator when output is not a terminal or quiet is set."""
    if is_quiet():
        return iterable
    return tqdm(iterable, desc=desc, total=total, leave=leave, dynamic_ncols=True)
