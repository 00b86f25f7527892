"""Resume checkpoints: one weights-only file per MLflow run, overwritten as training advances.

A method saves its whole resume state (state dicts, tensors, plain numbers, RNG states)
with ``save`` at every point it can restart from (an epoch or an experience), and asks
``load`` at start-up: ``None`` on a fresh run, the last saved state on ``suite resume``.
The file lives in the run's artifacts (``checkpoints/resume.pt``), so a run killed on one
machine resumes on another that sees the same tracking store. Everything loads back with
``torch.load(weights_only=True)``: a checkpoint is data, never code. Its tensors load onto the
device of the run that reads it (``map_location``), so a checkpoint written on a GPU resumes on a
CPU-only machine and back.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from suite.tracking import Tracker

ARTIFACT_DIR = "checkpoints"
RESUME_FILE = "resume.pt"


class CheckpointStore:
    """The resume checkpoint of one run, kept as the artifact ``checkpoints/resume.pt``."""

    def __init__(self, tracker: Tracker, run_dir: Path):
        self.tracker = tracker
        self.local = Path(run_dir) / ARTIFACT_DIR / RESUME_FILE

    def save(self, state: Mapping[str, Any]) -> None:
        """Write ``state`` atomically, then replace the run's artifact with it."""
        self.local.parent.mkdir(parents=True, exist_ok=True)
        partial = self.local.with_suffix(".partial")
        torch.save(dict(state), partial)
        os.replace(partial, self.local)
        self.tracker.log_artifact(self.local, ARTIFACT_DIR)

    def load(self, map_location: torch.device | str = "cpu") -> dict[str, Any] | None:
        """The last saved state of this run, its tensors on ``map_location`` (the run's device), or None when it never saved one."""
        path = self.tracker.download_artifact(f"{ARTIFACT_DIR}/{RESUME_FILE}", self.local.parent.parent / "downloaded")
        if path is None:
            return None
        return torch.load(path, map_location=map_location, weights_only=True)
