"""GEM (Lopez-Paz and Ranzato, NeurIPS 2017) for a seq2seq model, on Avalanche's ``GEMPlugin``.

GEM needs no classifier: before each step it computes one gradient per past experience, on
that experience's episodic memory, and if the batch's gradient would raise any of those
losses (a negative dot product) it replaces the gradient by the closest one that raises none,
solving the small dual quadratic program (one variable per past experience) with quadprog,
as the authors' code does. Avalanche's plugin computes the memory losses as
``strategy._criterion(model(x), y)`` on stacked input tensors; here each past experience's
memory is collated by the scenario's ``collate_fn`` (the audio has variable length) and its
loss is the seq2seq token loss (``suite.continual.strategy.sequence_loss``, with the run's
intent weight). The projection (``after_backward``) and the QP (``solve_quadprog``, quadprog
through qpsolvers) are Avalanche's, on every model parameter's gradient, before the template
clips it.

The memory keeps ``patterns_per_experience`` random samples of each experience trained
(``episodic_memory.py``), all of them used at every step: a step costs one extra forward and
backward pass per past experience. The memory losses' mean is logged as ``train.loss.gem``; it
is not added to the training loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from avalanche.training.plugins import GEMPlugin
from pydantic import Field

from suite.api import Options
from suite.continual.agem import flat_gradient
from suite.continual.entries import MethodSetup, continual_method
from suite.continual.episodic_memory import EpisodicMemory, EpisodicMemoryHooks
from suite.continual.strategy import sequence_loss


class GEMOptions(Options):
    patterns_per_experience: int = Field(64, ge=1, description="samples of each experience kept in the episodic memory")
    memory_strength: float = Field(0.5, ge=0, description="margin added to the QP's constraints, favouring backward transfer (gamma)")


class Seq2SeqGEMPlugin(EpisodicMemoryHooks, GEMPlugin):
    loss_name = "gem"

    def __init__(
        self, patterns_per_experience: int, memory_strength: float, collate_fn: Any, pad_id: int, experiences: Sequence[Any], seed: int
    ):
        super().__init__(patterns_per_experience, memory_strength)
        self.collate_fn = collate_fn
        self.pad_id = pad_id
        self.memory = EpisodicMemory(patterns_per_experience, experiences, seed)
        self.reference_loss: torch.Tensor | None = None
        self._batches: list[list[torch.Tensor]] = []

    def memory_batches(self, device: torch.device) -> list[list[torch.Tensor]]:
        """Each past experience's memory as one collated batch on ``device`` (collated once, again after a restore)."""
        if len(self._batches) != len(self.memory):
            self._batches = [[part.to(device) for part in self.collate_fn(list(dataset))] for dataset in self.memory.datasets]
        return self._batches

    def before_training_iteration(self, strategy: Any, **kwargs: Any) -> None:
        """The constraint gradients ``G``: one row per past experience, the seq2seq loss's gradient on its memory."""
        if not len(self.memory):
            return
        model = strategy.model
        model.train()
        rows, losses = [], []
        for batch in self.memory_batches(strategy.device):
            strategy.optimizer.zero_grad()
            loss = sequence_loss(model, batch, self.pad_id, strategy.intent_weight)
            loss.backward()
            rows.append(flat_gradient(model))
            losses.append(loss.detach())
        strategy.optimizer.zero_grad()
        self.G = torch.stack(rows)
        self.reference_loss = torch.stack(losses).mean()

    def memory_restored(self) -> None:
        self._batches = []


def make_plugins(options: GEMOptions, setup: MethodSetup) -> list[Any]:
    scenario = setup.scenario
    experiences = scenario.benchmark.train_stream
    return [
        Seq2SeqGEMPlugin(
            options.patterns_per_experience,
            options.memory_strength,
            scenario.collate_fn,
            scenario.tokenizer.pad_id,
            experiences,
            setup.seed,
        )
    ]


GEM = continual_method(
    "gem", GEMOptions, make_plugins, "gradient episodic memory: gradient projected by a QP so no past experience's loss rises (Avalanche)"
)
