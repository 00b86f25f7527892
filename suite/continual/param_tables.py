"""Avalanche's per-parameter tables (``{parameter name: ParamData}``) as plain tensors and back.

The importance-based plugins (SI, MAS, RWalk) keep their state in such tables; a resume
checkpoint stores them as tensors (``suite.continual.resume``), so that a resumed run penalizes
exactly what the uninterrupted run did.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from avalanche.training.utils import ParamData
from torch import Tensor


def table_state(table: Mapping[str, ParamData] | None) -> dict[str, Tensor] | None:
    """The table's tensors, cloned (None stays None)."""
    if table is None:
        return None
    return {name: data.data.clone() for name, data in table.items()}


def table_from_state(state: Mapping[str, Tensor] | None) -> dict[str, ParamData] | None:
    """A table of ``ParamData`` holding copies of ``state``'s tensors, on their devices (None stays None)."""
    if state is None:
        return None
    return {name: ParamData(name, init_tensor=tensor.clone(), device=tensor.device) for name, tensor in state.items()}


def move_tables(device: torch.device | str, *tables: Mapping[str, ParamData] | None) -> None:
    """Put the tables' tensors on ``device`` (a checkpoint loads on the CPU; the penalties run where the model is)."""
    for table in tables:
        for data in (table or {}).values():
            data.data = data.data.to(device)
            data.device = torch.device(device)
