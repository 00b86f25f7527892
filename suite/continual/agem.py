"""A-GEM (Chaudhry et al., ICLR 2019) for a seq2seq model, on Avalanche's ``AGEMPlugin``.

A-GEM needs no classifier: before each step it computes a reference gradient on a sample of
the episodic memory, and if the batch's gradient points against it (negative dot product) it
projects the gradient onto the half-space where the memory's loss does not rise. Avalanche's
plugin computes the reference loss as ``strategy._criterion(model(x), y)`` on class targets;
here it is the seq2seq token loss of the memory sample (``suite.continual.strategy
.sequence_loss``, with the run's intent weight), collated by the scenario's ``collate_fn``. The
projection (``after_backward``) is Avalanche's, on every model parameter's gradient, before
the template clips it.

The memory keeps ``patterns_per_experience`` random samples of each experience trained, and
each step draws ``sample_size`` of them balanced over experiences (``episodic_memory.py``,
which makes the draws resumable). The memory sample's loss is logged as ``train.loss.agem``; it
is not added to the training loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from avalanche.training.plugins import AGEMPlugin
from pydantic import Field

from suite.api import Options
from suite.continual.entries import MethodSetup, continual_method
from suite.continual.episodic_memory import EpisodicMemory, EpisodicMemoryHooks
from suite.continual.strategy import sequence_loss


class AGEMOptions(Options):
    patterns_per_experience: int = Field(100, ge=1, description="samples of each experience kept in the episodic memory")
    sample_size: int = Field(32, ge=1, description="memory samples drawn for each step's reference gradient")


def flat_gradient(model: torch.nn.Module) -> torch.Tensor:
    """Every parameter's gradient in one vector (zeros where a parameter has none), in ``parameters()`` order."""
    return torch.cat([p.grad.view(-1) if p.grad is not None else torch.zeros(p.numel(), device=p.device) for p in model.parameters()])


class Seq2SeqAGEMPlugin(EpisodicMemoryHooks, AGEMPlugin):
    loss_name = "agem"

    def __init__(self, patterns_per_experience: int, sample_size: int, collate_fn: Any, pad_id: int, experiences: Sequence[Any], seed: int):
        super().__init__(patterns_per_experience, sample_size)
        self.collate_fn = collate_fn
        self.pad_id = pad_id
        self.memory = EpisodicMemory(patterns_per_experience, experiences, seed)
        self.buffers = self.memory.datasets  # Avalanche's name: its after_backward projects while there are any
        self.reference_loss: torch.Tensor | None = None

    def before_training_iteration(self, strategy: Any, **kwargs: Any) -> None:
        """The reference gradient: the seq2seq loss's on a memory sample, in training mode as Avalanche computes it."""
        if not len(self.memory):
            return
        model = strategy.model
        model.train()
        strategy.optimizer.zero_grad()
        batch = [part.to(strategy.device) for part in self.sample_from_memory()]
        loss = sequence_loss(model, batch, self.pad_id, strategy.intent_weight)
        loss.backward()
        self.reference_gradients = flat_gradient(model)
        self.reference_loss = loss.detach()
        strategy.optimizer.zero_grad()

    def sample_from_memory(self) -> Any:
        return self.collate_fn(self.memory.sample(self.sample_size))

    def memory_restored(self) -> None:
        self.buffers = self.memory.datasets


def make_plugins(options: AGEMOptions, setup: MethodSetup) -> list[Any]:
    scenario = setup.scenario
    experiences = scenario.benchmark.train_stream
    return [
        Seq2SeqAGEMPlugin(
            options.patterns_per_experience, options.sample_size, scenario.collate_fn, scenario.tokenizer.pad_id, experiences, setup.seed
        )
    ]


AGEM = continual_method(
    "agem", AGEMOptions, make_plugins, "averaged gradient episodic memory: gradient projected against a memory sample's (Avalanche)"
)
