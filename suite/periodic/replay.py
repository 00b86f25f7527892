"""rec-replay: each period trains on its new samples plus a buffer of earlier training samples.

The buffer holds ``size`` training samples (a sample is a target interaction with the history
before it). ``reservoir``: every training sample seen so far has the same chance to be in it
(a seeded reservoir over the stream of periods). ``herding``: after each period, iCaRL's herding
on the model's sequence representation picks the ``size`` samples of the buffer and the new
period whose mean representation is closest to the pool's.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field

from suite.api import Options
from suite.periodic.entries import periodic_method
from suite.periodic.method import PeriodData, PeriodMethod


class ReplayOptions(Options):
    size: int = Field(500, ge=1, description="training samples kept across periods")
    policy: Literal["reservoir", "herding"] = "reservoir"


def herding(features: torch.Tensor, count: int) -> list[int]:
    """iCaRL's herding: greedily the rows whose running mean stays closest to the mean of all (L2-normalized) rows."""
    features = torch.nn.functional.normalize(features.double(), dim=1)
    target = features.mean(dim=0)
    chosen: list[int] = []
    running = torch.zeros_like(target)
    available = torch.ones(len(features), dtype=torch.bool)
    for step in range(min(count, len(features))):
        gaps = ((target - (running + features) / (step + 1)) ** 2).sum(dim=1)
        gaps[~available] = torch.inf
        best = int(gaps.argmin())
        chosen.append(best)
        available[best] = False
        running += features[best]
    return chosen


class Replay(PeriodMethod):
    name = "rec-replay"

    def __init__(self, options: ReplayOptions, seed: int):
        super().__init__(options, seed)
        self.buffer = np.zeros(0, dtype=np.int64)
        self.seen = 0

    def samples(self, period: int, data: PeriodData) -> np.ndarray:
        return np.concatenate([data.timeline.training(period), self.buffer])

    def after_period(self, period: int, data: PeriodData, batch_size: int) -> None:
        new = data.timeline.training(period)
        if self.options.policy == "herding":
            pool = np.concatenate([self.buffer, new])
            self.buffer = pool[herding(data.representations(pool, batch_size), self.options.size)]
        else:
            self.buffer = self._reservoir(new, np.random.default_rng([self.seed, period, 1]))
        self.seen += len(new)

    def _reservoir(self, new: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        buffer = list(self.buffer)
        for offset, sample in enumerate(new):
            position = self.seen + offset
            if len(buffer) < self.options.size:
                buffer.append(sample)
            else:
                slot = int(rng.integers(position + 1))
                if slot < self.options.size:
                    buffer[slot] = sample
        return np.asarray(buffer, dtype=np.int64)

    def state_dict(self) -> dict[str, Any]:
        return {"buffer": torch.as_tensor(self.buffer), "seen": self.seen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.buffer, self.seen = state["buffer"].numpy().astype(np.int64), int(state["seen"])


REC_REPLAY = periodic_method("rec-replay", ReplayOptions, Replay, "new data plus a buffer of earlier samples (reservoir or herding)")
