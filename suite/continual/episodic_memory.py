"""The episodic memory of GEM and A-GEM: a fixed number of random samples of each experience trained.

Avalanche's ``GEMPlugin`` keeps the memory as stacked input tensors, which variable-length
audio cannot be, and ``AGEMPlugin`` as datasets sampled by an infinite loader whose position a
checkpoint cannot hold. Here the memory is the chosen positions in each experience's dataset,
drawn from a generator of its own (seeded by the run's seed), so ``state_dict`` is a few
integers plus the generator's state, and ``load_state_dict`` rebuilds the same samples from the
training stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


class EpisodicMemory:
    """Up to ``per_experience`` samples of every experience added, each experience's kept apart."""

    def __init__(self, per_experience: int, experiences: Sequence[Any], seed: int):
        self.per_experience = per_experience
        self.experiences = list(experiences)
        self.generator = torch.Generator().manual_seed(seed)
        self.positions: dict[int, list[int]] = {}
        self.datasets: list[Any] = []

    def __len__(self) -> int:
        return len(self.datasets)

    def add(self, experience: Any) -> None:
        """Draw the experience's samples (a uniform subset, as a shuffled pass that keeps its first ones)."""
        dataset = experience.dataset
        chosen = torch.randperm(len(dataset), generator=self.generator)[: self.per_experience].tolist()
        self.positions[int(experience.current_experience)] = chosen
        self.datasets.append(dataset.subset(chosen))

    def sample(self, size: int) -> list[Any]:
        """``size`` samples balanced over the experiences (``size // experiences`` each, at least one), without replacement within each."""
        per_experience = max(1, size // len(self.datasets))
        items = []
        for dataset in self.datasets:
            order = torch.randperm(len(dataset), generator=self.generator)[:per_experience]
            items.extend(dataset[int(i)] for i in order)
        return items

    def state_dict(self) -> dict[str, Any]:
        return {"positions": {int(k): list(v) for k, v in self.positions.items()}, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not self.experiences and state["positions"]:
            raise ValueError("EpisodicMemory needs its training experiences to rebuild a saved memory")
        self.positions = {int(k): list(v) for k, v in state["positions"].items()}
        self.datasets = [self.experiences[k].dataset.subset(chosen) for k, chosen in self.positions.items()]
        self.generator.set_state(state["generator"])


class EpisodicMemoryHooks:
    """The plugin hooks GEM and A-GEM share: the memory grows after each experience trained, the memory
    loss of the step is reported as a loss term (logged, not added to the loss), and a checkpoint holds
    the memory. A plugin sets ``memory``, ``loss_name`` and, each step, ``reference_loss``."""

    memory: EpisodicMemory
    loss_name: str
    reference_loss: torch.Tensor | None = None

    def before_backward(self, strategy: Any, **kwargs: Any) -> None:
        if self.reference_loss is not None and len(self.memory):
            strategy.loss_terms[self.loss_name] = self.reference_loss

    def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        self.memory.add(strategy.experience)

    def state_dict(self) -> dict[str, Any]:
        return {"memory": self.memory.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.memory.load_state_dict(state["memory"])
        self.memory_restored()

    def memory_restored(self) -> None:
        """Called after a checkpoint's memory is loaded: drop what was derived from the memory before."""
