"""``train.device`` in every family: one grammar, one check, one meaning.

``cpu``; ``cuda``, the current CUDA device (in a Ray trial, the GPU Ray gave it); ``cuda:N``;
``auto``, the first GPU when there is one, else the CPU. The device must exist where the run
trains, so it is checked in the process that trains, when the run starts (on a Ray cluster
that is a worker, which may have GPUs the launching machine lacks), and, for a launch that
trains on this machine, once more while the launch is planned: a spec written for a GPU
machine is then exit 2 before any MLflow run exists.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from suite.errors import SpecError

if TYPE_CHECKING:
    import torch

DEVICE = re.compile(r"cpu|auto|cuda(?::\d+)?")
EXPECTED = "expected 'cpu', 'cuda', 'cuda:N' or 'auto'"


def device_name(value: str) -> str:
    """Validator of ``train.device``: the grammar above, nothing else (RecBole never sees the text)."""
    if not isinstance(value, str) or not DEVICE.fullmatch(value):
        raise ValueError(EXPECTED)
    return value


def resolve_device(value: str) -> torch.device:
    """The torch device ``value`` names on this machine (``auto``: the first GPU when there is one)."""
    import torch

    if value == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(value)


def check_device(value: str) -> None:
    """SpecError naming ``train.device`` when it asks for a CUDA device this machine does not have."""
    import torch

    target = resolve_device(value)
    if target.type != "cuda":
        return
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise SpecError(f"train.device: {value}, but torch sees no CUDA device here; use cpu or auto")
    if target.index is not None and target.index >= count:
        raise SpecError(f"train.device: {value}, but torch sees {count} CUDA device(s) (cuda:0..cuda:{count - 1})")


def check_points_devices(points: Any) -> None:
    """The planning-time check of a launch that trains here: every point's device exists on this machine."""
    for label, point in points:
        try:
            check_device(point.train_options.device)
        except SpecError as error:
            raise SpecError(f"{point.source} (grid point {label}): {error}") from None
