"""One seed fixes every random choice: Python, NumPy and torch generators; their state saved and restored.

``rng_state``/``restore_rng_state`` let a resumed run continue the exact random stream of
the run it resumes; the state holds plain lists and tensors only, so it fits a weights-only
checkpoint.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (every device) from one seed."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """The state of every global generator, as tensors, lists and numbers."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": _to_lists(random.getstate()),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Put every global generator back where ``rng_state`` found it.

    Generator states are CPU byte tensors whatever device the checkpoint was loaded onto; the CUDA
    generators' states are restored only where CUDA is (a GPU run resumed on a CPU draws on the CPU).
    """
    random.setstate(_to_tuples(state["python"]))
    numpy = state["numpy"]
    keys = numpy["keys"].cpu().numpy().astype(np.uint32)
    np.random.set_state((numpy["kind"], keys, numpy["position"], numpy["has_gauss"], numpy["cached_gaussian"]))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        saved = state["cuda"][: torch.cuda.device_count()]  # a run saved on more GPUs than this machine has
        torch.cuda.set_rng_state_all([generator.cpu() for generator in saved])


def _to_lists(value: Any) -> Any:
    return [_to_lists(item) for item in value] if isinstance(value, tuple) else value


def _to_tuples(value: Any) -> Any:
    return tuple(_to_tuples(item) for item in value) if isinstance(value, list) else value


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Run a block without moving any global generator: whatever it draws, the state after it is the state before."""
    state = rng_state()
    try:
        yield
    finally:
        restore_rng_state(state)
