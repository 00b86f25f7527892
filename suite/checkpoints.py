"""Resume checkpoints: one weights-only file per MLflow run, overwritten as training advances.

A method saves its whole resume state (state dicts, tensors, plain numbers, RNG states)
with ``save`` at every point it can restart from (an epoch or an experience), and asks
``load`` at start-up: ``None`` on a fresh run, the last saved state on ``suite resume``.
The file lives in the run's artifacts (``checkpoints/resume.pt``), so a run killed on one
machine resumes on another that sees the same tracking store. Everything loads back with
``torch.load(weights_only=True)``: a checkpoint is data, never code.

A checkpoint carries an XXH3-128 digest of its own content (every tensor's dtype, shape and
bytes, every number and string, in order), stored inside the same file so that it is written
and uploaded atomically with it. ``load`` checks it, and that every floating tensor is
finite, before a method sees the state: a checkpoint changed after it was written (bit rot,
a stray edit) or holding a NaN is a ``DataError`` naming the file, never a resumed run with
other numbers. ``suite resume`` loads it once before it reopens the run, so such a run is
left as it was.
Its tensors load onto the device of the run that reads it (``map_location``), so a checkpoint
written on a GPU resumes on a CPU-only machine and back.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import xxhash

from suite.errors import DataError

if TYPE_CHECKING:
    from suite.tracking import Tracker

ARTIFACT_DIR = "checkpoints"
RESUME_FILE = "resume.pt"
CHECKSUM_KEY = "suite.checksum"


class CheckpointStore:
    """The resume checkpoint of one run, kept as the artifact ``checkpoints/resume.pt``."""

    def __init__(self, tracker: Tracker, run_dir: Path):
        self.tracker = tracker
        self.local = Path(run_dir) / ARTIFACT_DIR / RESUME_FILE

    def save(self, state: Mapping[str, Any]) -> None:
        """Write ``state`` atomically, then replace the run's artifact with it."""
        self.local.parent.mkdir(parents=True, exist_ok=True)
        partial = self.local.with_suffix(".partial")
        torch.save({**state, CHECKSUM_KEY: state_digest(state)}, partial)
        os.replace(partial, self.local)
        self.tracker.log_artifact(self.local, ARTIFACT_DIR)

    def check(self) -> None:
        """Load the run's checkpoint once and drop it: a damaged one is a DataError before anything touches the run."""
        self.load()

    def load(self, map_location: torch.device | str = "cpu") -> dict[str, Any] | None:
        """The last saved state of this run, its tensors on ``map_location`` (the run's device), or None when it never saved one."""
        path = self.tracker.download_artifact(f"{ARTIFACT_DIR}/{RESUME_FILE}", self.local.parent.parent / "downloaded")
        if path is None:
            return None
        name = f"resume checkpoint {self.tracker.artifact_uri(f'{ARTIFACT_DIR}/{RESUME_FILE}')}"
        return read_checkpoint(path, name, map_location)


def read_checkpoint(path: Path, name: str, map_location: torch.device | str = "cpu") -> dict[str, Any]:
    """The state saved at ``path``, checked against its own digest and for non-finite values; ``name`` says which file in errors."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # checked on the CPU, then moved
    except Exception as error:  # a torn or overwritten file: torch's zip reader and unpickler raise many kinds
        raise DataError(f"{name}: cannot be read ({type(error).__name__}: {' '.join(str(error).split())[:200]})") from None
    recorded = state.pop(CHECKSUM_KEY, None) if isinstance(state, dict) else None
    if recorded is None:
        raise DataError(f"{name}: has no checksum (not written by this version of the suite); nothing was resumed")
    if state_digest(state) != recorded:
        raise DataError(f"{name}: does not match the checksum written with it (changed or damaged since); nothing was resumed")
    bad = first_non_finite(state)
    if bad is not None:
        raise DataError(f"{name}: {bad} holds NaN or inf values; nothing was resumed")
    return state if torch.device(map_location).type == "cpu" else moved(state, torch.device(map_location))


def moved(value: Any, device: torch.device) -> Any:
    """``value`` with every tensor on ``device`` (dicts, lists and tuples rebuilt, anything else as is)."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, Mapping):
        return {key: moved(item, device) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(moved(item, device) for item in value)
    return value


def state_digest(state: Any) -> str:
    """XXH3-128 of a state's content: structure, keys, tensors (dtype, shape, bytes) and plain values, in order."""
    digest = xxhash.xxh3_128()
    _feed(digest, state)
    return "xxh3_128:" + digest.hexdigest()


def _feed(digest: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        flat = value.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"tensor {value.dtype} {tuple(value.shape)};".encode())
        digest.update(flat.view(torch.uint8).numpy() if flat.numel() else b"")
    elif isinstance(value, np.ndarray):
        digest.update(f"ndarray {value.dtype} {value.shape};".encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, Mapping):
        digest.update(f"dict {len(value)}{{".encode())
        for key, item in value.items():
            _feed(digest, key)
            _feed(digest, item)
        digest.update(b"}")
    elif isinstance(value, (list, tuple)):
        digest.update(f"{type(value).__name__} {len(value)}[".encode())
        for item in value:
            _feed(digest, item)
        digest.update(b"]")
    else:  # numbers, strings, None, torch.Size, dtypes: repr is exact for each
        digest.update(f"{type(value).__name__} {value!r};".encode())


def first_non_finite(value: Any, path: str = "") -> str | None:
    """The key path of the first floating tensor holding NaN or inf, or None."""
    if isinstance(value, torch.Tensor):
        if not value.is_floating_point() or value.numel() == 0:
            return None
        if bool(torch.isfinite(value.sum())):  # NaN and inf propagate: a finite sum means every value is finite
            return None
        return None if bool(torch.isfinite(value).all()) else (path or "the state")  # the sum may just have overflowed
    if isinstance(value, Mapping):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = first_non_finite(item, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None
