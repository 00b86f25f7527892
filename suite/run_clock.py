"""A run's training time across its segments: a resumed run continues the count its checkpoint saved.

``train_seconds`` (a run's summary metric, and the wall time ``suite export`` writes to the results
CSVs) must neither count the hours a killed run waited for ``suite resume`` nor forget the segments
before it. So every resume checkpoint carries the seconds so far (``STATE_KEY``), and the resumed run
starts its count from there. A checkpoint written before the count existed has none: the total is
then unknown (``seconds()`` is None) and the run logs no ``train_seconds`` rather than a wrong one.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

STATE_KEY = "train_seconds"


class RunClock:
    """Seconds since this segment started, plus those of the segments before it."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.before: float | None = 0.0

    def segment_seconds(self) -> float:
        """Seconds since this process's part of the run started."""
        return time.perf_counter() - self.started

    def seconds(self) -> float | None:
        """Seconds of the whole run so far; None when an earlier segment's count is unknown."""
        return None if self.before is None else self.before + self.segment_seconds()

    def resume(self, state: Mapping[str, Any]) -> None:
        """Continue the count a resume checkpoint ``state`` saved (None when it predates the count)."""
        saved = state.get(STATE_KEY)
        self.before = None if saved is None else float(saved)
