"""Progress bars that show on a terminal and stay silent in logs, CI and ``--quiet`` runs.

The quiet flag travels in ``RunContext.quiet`` (and ``BuildContext.quiet``), explicitly, so a
Ray worker or a forked process gets the same answer as the driver.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def shows_progress(quiet: bool) -> bool:
    """Bars only for a terminal, and only when the run is not quiet."""
    return not quiet and sys.stderr.isatty()


def progress(iterable: Iterable[T], desc: str, total: int | None = None, leave: bool = False, quiet: bool = False) -> Iterable[T]:
    """Wrap a long loop; a plain iterator when output is not a terminal or the run is quiet (pass ``ctx.quiet``)."""
    if not shows_progress(quiet):
        return iterable
    return tqdm(iterable, desc=desc, total=total, leave=leave, dynamic_ncols=True)
