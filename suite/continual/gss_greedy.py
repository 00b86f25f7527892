"""GSS-greedy, gradient-based sample selection (Aljundi et al., NeurIPS 2019), on the seq2seq model.

The buffer keeps samples whose gradients point in diverse directions. For every training batch
the gradients of ``gss.mem_strength`` random buffer subsets are computed (each of the batch's
size); while the buffer has room, each new sample enters with a score, the largest cosine
similarity between its own gradient and those subset gradients; once it is full, a batch whose
gradient has a negative largest similarity to them is a candidate: buffer slots are drawn with
probability rising with their score, and each new sample replaces its drawn slot with
probability (1 + s_new) / (2 + s_new + s_slot). The buffer is rehearsed like ``replay``'s
(``ReplayDataLoader``: ``replay.batch_size_mem`` buffer samples joined to each batch).

This is Avalanche's ``GSS_greedyPlugin`` (after RaptorMai's online-continual-learning code),
with what a seq2seq model needs changed:

- the loss whose gradients are compared is the seq2seq token loss (``sequence_loss``), per
  sample for the per-sample scores: one backward pass per new sample;
- Avalanche's memory is a fixed tensor of equally shaped inputs; utterances differ in length,
  so the buffer is a list of (features, label, tokens, task) samples, saved as tensors;
- gradients are taken with ``torch.autograd.grad`` in eval mode (Avalanche's ``backward`` leaves
  the last of them in ``.grad``, where the training step adds its own), from the batch's new
  samples only (Avalanche's ``mb_x`` holds the rehearsal samples joined to it as well);
- the slot-drawing weights get a floor of 1e-6: the lowest-scored slot has weight 0 in the
  original, and a buffer with equal scores has no valid distribution at all.

Cost, measured (``benchmarks/bench_gss_cost.py``): at the study's setting (small model, 1% buffer)
2-3.4x replay's training time per experience, 4-5x on a synthetic proxy: the price of
``mem_strength`` extra backward passes per batch, and one per new sample when the buffer has
room or a batch is a replacement candidate.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from avalanche.benchmarks.utils import _make_taskaware_classification_dataset
from avalanche.benchmarks.utils.data_loader import ReplayDataLoader
from avalanche.training.plugins import SupervisedPlugin
from pydantic import Field, model_validator
from torch import Tensor

from suite.api import Options
from suite.continual.entries import MethodSetup, continual_method
from suite.continual.replay import ReplayOptions, buffer_size
from suite.continual.strategy import sequence_loss

Sample = tuple[Tensor, int, Tensor, int]


class GSSParams(Options):
    mem_strength: int = Field(
        5, ge=1, description="random buffer subsets whose gradients each new batch is compared with (Avalanche's default)"
    )


class GSSOptions(Options):
    """``replay.size`` and ``replay.batch_size_mem`` as for ``replay``; the buffer policy is GSS's own."""

    replay: ReplayOptions = Field(default_factory=ReplayOptions)
    gss: GSSParams = Field(default_factory=GSSParams)

    @model_validator(mode="after")
    def _own_policy(self) -> GSSOptions:
        if "policy" in self.replay.model_fields_set:
            raise ValueError("GSS-greedy fills its buffer by gradient diversity; replay.policy does not apply")
        return self


def largest_cosine(memory: Tensor, grads: Tensor) -> Tensor:
    """For each row of ``grads`` [N, P], its largest cosine similarity to a row of ``memory`` [M, P]: [N]."""
    return F.normalize(grads, dim=1).mm(F.normalize(memory, dim=1).t()).max(dim=1).values


class GSSGreedyPlugin(SupervisedPlugin):
    """Fills its buffer by gradient diversity during training; rehearses it like replay."""

    def __init__(self, mem_size: int, mem_strength: int, collate_fn: Any, pad_id: int, intent_weight: float, batch_size_mem: int | None):
        super().__init__()
        self.mem_size, self.mem_strength = mem_size, mem_strength
        self.collate_fn, self.pad_id, self.intent_weight = collate_fn, pad_id, intent_weight
        self.batch_size_mem = batch_size_mem
        self.samples: list[Sample] = []
        self.scores = torch.zeros(mem_size)
        self.rehearsed: list[Sample] = []
        """The buffer as the experience began: what its batches rehearse while selection changes ``samples``."""
        self.rehearsed_at: int | None = None

    # ---- rehearsal ---------------------------------------------------------------------------
    def before_training_exp(self, strategy: Any, num_workers: int = 0, shuffle: bool = True, **kwargs: Any) -> None:
        """Rehearse the buffer as it stood when the experience began (kept: a run resumed within it rehearses the same)."""
        if self.rehearsed_at != strategy.experience.current_experience:
            self.rehearsed, self.rehearsed_at = list(self.samples), strategy.experience.current_experience
        if not self.rehearsed:
            return
        memory = _make_taskaware_classification_dataset(
            list(self.rehearsed), targets=[s[1] for s in self.rehearsed], task_labels=0, collate_fn=self.collate_fn
        )
        strategy.dataloader = ReplayDataLoader(
            strategy.adapted_dataset,
            memory,
            oversample_small_tasks=True,
            batch_size=strategy.train_mb_size,
            batch_size_mem=self.batch_size_mem or strategy.train_mb_size,
            num_workers=num_workers,
            shuffle=shuffle,
            collate_fn=self.collate_fn,
        )

    # ---- selection ---------------------------------------------------------------------------
    def after_forward(self, strategy: Any, **kwargs: Any) -> None:
        if not (strategy.is_training and strategy.mb_has_new):
            return
        new = self.new_samples(strategy)
        model = strategy.model
        was_training = model.training
        model.eval()
        if len(self.samples) >= self.mem_size:
            self.replace(strategy, new)
        else:
            added = new[: self.mem_size - len(self.samples)]
            if self.samples:
                scores = largest_cosine(self.memory_gradients(strategy, len(new)), self.sample_gradients(strategy, added))
            else:
                scores = torch.full((len(added),), 0.1)
            self.scores[len(self.samples) : len(self.samples) + len(added)] = scores
            self.samples.extend(added)
        model.train(was_training)

    def replace(self, strategy: Any, new: list[Sample]) -> None:
        """A full buffer: a batch whose gradient opposes the buffer's may replace slots drawn by score."""
        memory = self.memory_gradients(strategy, len(new))
        if float(largest_cosine(memory, self.gradient(strategy, new).unsqueeze(0))[0]) >= 0:
            return
        scores = self.scores[: len(self.samples)]
        weights = (scores - scores.min()) / (scores.max() - scores.min() + 0.01) + 1e-6
        slots = torch.multinomial(weights, min(len(new), len(self.samples)), replacement=False)
        new = new[: len(slots)]
        new_scores = largest_cosine(memory, self.sample_gradients(strategy, new))
        odds = torch.stack([(new_scores + 1) / 2, (self.scores[slots] + 1) / 2], dim=1)
        take = torch.multinomial(odds, 1).squeeze(1).bool()
        for k in take.nonzero().squeeze(1).tolist():
            self.samples[int(slots[k])] = new[k]
            self.scores[int(slots[k])] = new_scores[k]

    def memory_gradients(self, strategy: Any, batch_size: int) -> Tensor:
        """Gradients of up to ``mem_strength`` random, disjoint buffer subsets of ``batch_size`` samples: [S, P]."""
        size = min(batch_size, len(self.samples))
        count = max(1, min(self.mem_strength, len(self.samples) // size))
        order = torch.randperm(len(self.samples)).tolist()
        return torch.stack([self.gradient(strategy, [self.samples[i] for i in order[k * size : (k + 1) * size]]) for k in range(count)])

    def sample_gradients(self, strategy: Any, samples: list[Sample]) -> Tensor:
        return torch.stack([self.gradient(strategy, [sample]) for sample in samples])

    def gradient(self, strategy: Any, samples: list[Sample]) -> Tensor:
        """The seq2seq loss's gradient on ``samples``, flattened over the model's trainable parameters (on the CPU)."""
        params = [p for p in strategy.model.parameters() if p.requires_grad]
        batch = [part.to(strategy.device) for part in self.collate_fn(samples)]
        grads = torch.autograd.grad(sequence_loss(strategy.model, batch, self.pad_id, self.intent_weight), params, allow_unused=True)
        return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)]).cpu()

    @staticmethod
    def new_samples(strategy: Any) -> list[Sample]:
        """The batch's new samples, unpadded, as the scenario's samples are: (features, label, tokens, task)."""
        x, y, x_lens, tokens, t = (part.cpu() for part in strategy.mbatch[:5])
        rows = strategy.mb_new_index.tolist()
        return [(x[i, : x_lens[i]].clone(), int(y[i]), tokens[i][tokens[i] != strategy.pad_id].clone(), int(t[i])) for i in rows]

    # ---- resume ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "samples": [(x.clone(), y, tokens.clone(), t) for x, y, tokens, t in self.samples],
            "scores": self.scores.clone(),
            "rehearsed": [(x.clone(), y, tokens.clone(), t) for x, y, tokens, t in self.rehearsed],
            "rehearsed_at": self.rehearsed_at,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.samples = [(x.clone(), int(y), tokens.clone(), int(t)) for x, y, tokens, t in state["samples"]]
        self.scores = state["scores"].clone()
        self.rehearsed = [(x.clone(), int(y), tokens.clone(), int(t)) for x, y, tokens, t in state["rehearsed"]]
        self.rehearsed_at = state["rehearsed_at"]


def make_plugins(options: GSSOptions, setup: MethodSetup) -> list[Any]:
    scenario = setup.scenario
    size = buffer_size(options.replay.size, scenario.train_size)
    return [
        GSSGreedyPlugin(
            size,
            options.gss.mem_strength,
            scenario.collate_fn,
            scenario.tokenizer.pad_id,
            setup.train.intent_weight,
            options.replay.batch_size_mem,
        )
    ]


GSS_GREEDY = continual_method(
    "gss-greedy",
    GSSOptions,
    make_plugins,
    "GSS-greedy: a buffer chosen by gradient diversity (per-sample gradients), rehearsed like replay",
)
