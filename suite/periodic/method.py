"""What a continual recommendation method decides, and the data it decides it on.

A method is a ``PeriodMethod``: which samples period k trains on, in which batches, with
which loss, and what it keeps for the next period (a buffer, a teacher's scores). The base
class is fine-tuning: period k's own samples, the model's own loss. The runner calls the
hooks in order: ``start`` (once), ``before_period``, ``batches`` (every epoch), ``loss``, ``after_period``;
``state_dict`` is saved with the resume checkpoint after every period.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from recbole.data.interaction import Interaction

from scenarios.recsys.periods import Timeline


@dataclass
class PeriodData:
    """The run's timeline on RecBole's ids, and how a set of samples becomes a model batch."""

    timeline: Timeline
    model: Any
    max_length: int
    item_count: int

    def batch(self, indices: np.ndarray, **extra: torch.Tensor) -> Interaction:
        """Samples ``indices`` as the Interaction RecBole's sequential models read (input sequence, its length, the target)."""
        sequences, lengths = self.timeline.inputs(indices, self.max_length)
        fields = {
            self.model.ITEM_SEQ: torch.as_tensor(sequences, dtype=torch.long),
            self.model.ITEM_SEQ_LEN: torch.as_tensor(lengths, dtype=torch.long),
            self.model.POS_ITEM_ID: torch.as_tensor(self.timeline.items[indices], dtype=torch.long),
            self.model.USER_ID: torch.as_tensor(self.timeline.users[indices], dtype=torch.long),
        }
        return Interaction({**fields, **extra})

    def items_until(self, period: int) -> np.ndarray:
        """The items of every interaction up to the end of ``period`` (a bool mask over item ids)."""
        seen = np.zeros(self.item_count, dtype=bool)
        seen[self.timeline.items[self.timeline.period <= period]] = True
        return seen

    def representations(self, indices: np.ndarray, batch_size: int) -> torch.Tensor:
        """The model's sequence representation of each sample (eval mode, no gradient), on the CPU."""
        return torch.cat([self._forward(chunk) for chunk in _chunks(indices, batch_size)]) if len(indices) else torch.zeros(0)

    def scores(self, indices: np.ndarray, batch_size: int) -> torch.Tensor:
        """The model's score of every item for each sample (eval mode, no gradient), on the CPU."""
        return torch.cat([self._scores(chunk) for chunk in _chunks(indices, batch_size)])

    @torch.no_grad()
    def _forward(self, indices: np.ndarray) -> torch.Tensor:
        batch = self.batch(indices).to(self.model.device)
        training = self.model.training
        self.model.eval()
        try:
            return self.model.forward(batch[self.model.ITEM_SEQ], batch[self.model.ITEM_SEQ_LEN]).float().cpu()
        finally:
            self.model.train(training)

    @torch.no_grad()
    def _scores(self, indices: np.ndarray) -> torch.Tensor:
        training = self.model.training
        self.model.eval()
        try:
            return self.model.full_sort_predict(self.batch(indices).to(self.model.device)).float().cpu()
        finally:
            self.model.train(training)


class BatchList:
    """An epoch's batches with ``len()``, as RecBole's trainer iterates them."""

    def __init__(self, batches: list[Interaction]):
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[Interaction]:
        return iter(self.batches)


def shuffled_chunks(indices: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    return _chunks(rng.permutation(indices), batch_size)


def _chunks(indices: np.ndarray, size: int) -> list[np.ndarray]:
    return [indices[start : start + size] for start in range(0, len(indices), size)]


class PeriodMethod:
    """Fine-tuning: each period trains on its own samples only (the lower bound)."""

    name = "finetune"
    trains_with_its_own_loss = False
    """True when ``loss`` adds terms to the model's loss (the model's trainer must accept a loss function)."""

    def __init__(self, options: Any, seed: int):
        self.options = options
        self.seed = seed

    def start(self, data: PeriodData, trainer: Any) -> None:
        """Called once the model is built, before a resumed run restores its state (joint training keeps the initial weights)."""

    def before_period(self, period: int, data: PeriodData, trainer: Any) -> None:
        """Called before period ``period`` trains (joint training re-initializes the model here)."""

    def samples(self, period: int, data: PeriodData) -> np.ndarray:
        """The sample indices period ``period`` trains on."""
        return data.timeline.training(period)

    def batches(self, period: int, epoch: int, data: PeriodData, batch_size: int) -> BatchList:
        """One epoch's batches, shuffled by a generator seeded by (seed, period, epoch): a resumed run draws the same."""
        rng = np.random.default_rng([self.seed, period, epoch])
        return BatchList([data.batch(chunk) for chunk in shuffled_chunks(self.samples(period, data), batch_size, rng)])

    def loss(self, model: Any) -> Callable[[Interaction], torch.Tensor] | None:
        """The loss function of a batch, or None for the model's own ``calculate_loss``."""
        return None

    def after_period(self, period: int, data: PeriodData, batch_size: int) -> None:
        """Called once period ``period`` has trained and been evaluated (buffers are updated here)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
