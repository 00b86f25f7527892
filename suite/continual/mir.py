"""MIR, maximally interfered retrieval (Aljundi et al., NeurIPS 2019), on the seq2seq model.

Each training step: draw ``mir.subsample`` candidates from the buffer, take a virtual SGD step
with the gradient of the current batch's loss (``theta' = theta - lr * grad``, lr the
optimizer's), and rehearse the ``replay.batch_size_mem`` candidates whose loss rises most
under it (``loss(theta') - loss(theta)``): their seq2seq loss is the ``mir`` term, added with
weight 1 as in Avalanche's ``MIRPlugin``.

What changes on the seq2seq model: Avalanche's plugin scores candidates with
``criterion(model(x), y)``, one class logit vector per sample. Here the per-sample loss is the
seq2seq token cross-entropy averaged over each utterance's real target tokens (the intent token
weighted ``train.intent_weight`` as in the training loss): ``per_sample_sequence_loss``. The
virtual model is not a deep copy: the candidates go through ``torch.func.functional_call`` with
the updated parameters. Both scoring passes run in eval mode, so that dropout draws no mask
(the two losses differ by the virtual step only) and no random number is consumed. Candidates
are drawn with the global torch generator (no loader iterator to save), so a resumed run draws
the same ones. The buffer is the suite's replay buffer (any policy; Avalanche's MIR uses
class-balanced, the suite's default here is reservoir like ``replay``), updated after each
experience; in class-incremental learning it holds old classes only, so Avalanche's exclusion
of the last batch's classes changes nothing and is left out.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn
from torch.func import functional_call

from suite.api import Options
from suite.continual.entries import MethodSetup, continual_method
from suite.continual.replay import ReplayOptions, Seq2SeqReplayPlugin, replay_plugin

MIR_SUBSAMPLE = 50
"""Candidates scored per step (Avalanche's default is 200 for image classifiers; a seq2seq forward costs more)."""


class MIRParams(Options):
    subsample: int = Field(
        MIR_SUBSAMPLE, ge=1, description="buffer candidates scored per step; the top replay.batch_size_mem are rehearsed"
    )


class MIROptions(Options):
    replay: ReplayOptions = Field(default_factory=ReplayOptions)
    mir: MIRParams = Field(default_factory=MIRParams)


def per_sample_sequence_loss(logits: Tensor, targets: Tensor, pad_id: int, intent_weight: float = 1.0) -> Tensor:
    """Token cross-entropy averaged per utterance over its non-pad targets, the first (the intent) weighted: [B]."""
    per_token = F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=pad_id, reduction="none")
    weights = (targets != pad_id).to(per_token.dtype)
    if intent_weight != 1.0:
        weights[:, 0] = weights[:, 0] * intent_weight
    return (per_token * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def most_interfered(loss_before: Tensor, loss_after: Tensor, count: int) -> Tensor:
    """Indices of the ``count`` samples whose loss rises most from ``loss_before`` to ``loss_after``, largest rise first."""
    return torch.argsort(loss_after - loss_before, descending=True, stable=True)[:count]


class MIRPlugin(Seq2SeqReplayPlugin):
    """The suite's replay buffer, rehearsed by MIR's retrieval instead of uniform sampling."""

    def __init__(self, replay: Seq2SeqReplayPlugin, subsample: int, batch_size_mem: int, pad_id: int, intent_weight: float):
        super().__init__(replay.mem_size, replay.collate_fn, replay.storage_policy, experiences=replay.experiences)
        self.subsample, self.batch_size_mem = subsample, batch_size_mem
        self.pad_id, self.intent_weight = pad_id, intent_weight

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        """New samples only in the loader: rehearsal samples come through ``before_backward``."""

    def before_backward(self, strategy: Any, **kwargs: Any) -> None:
        buffer = self.storage_policy.buffer
        if len(buffer) == 0:
            return
        picks = torch.randperm(len(buffer))[: self.subsample].tolist()
        candidates = [part.to(strategy.device) for part in self.collate_fn([buffer[i] for i in picks])]
        chosen = self.retrieve(strategy, candidates)
        x, _, x_lens, tokens = (part[chosen] for part in candidates[:4])
        logits = strategy.model(x, x_lens, tokens[:, :-1])
        loss = per_sample_sequence_loss(logits, tokens[:, 1:], self.pad_id, self.intent_weight).mean()
        strategy.add_loss("mir", loss)

    def retrieve(self, strategy: Any, candidates: list[Tensor]) -> Tensor:
        """Rows of ``candidates`` most interfered with by a virtual SGD step on the current loss."""
        model: nn.Module = strategy.model
        names, params = zip(*[(name, p) for name, p in model.named_parameters() if p.requires_grad])
        grads = torch.autograd.grad(strategy.loss, params, retain_graph=True, allow_unused=True)
        lr = strategy.optimizer.param_groups[0]["lr"]
        updated = {name: p.detach() - lr * g if g is not None else p.detach() for name, p, g in zip(names, params, grads)}
        x, _, x_lens, tokens = candidates[:4]
        was_training = model.training
        model.eval()
        with torch.no_grad():
            before = per_sample_sequence_loss(model(x, x_lens, tokens[:, :-1]), tokens[:, 1:], self.pad_id, self.intent_weight)
            after_logits = functional_call(model, updated, (x, x_lens, tokens[:, :-1]), strict=False)
            after = per_sample_sequence_loss(after_logits, tokens[:, 1:], self.pad_id, self.intent_weight)
        model.train(was_training)
        return most_interfered(before, after, self.batch_size_mem)


def make_plugins(options: MIROptions, setup: MethodSetup) -> list[Any]:
    replay = replay_plugin(options.replay, setup)
    batch_size_mem = options.replay.batch_size_mem or setup.train.batch_size
    return [MIRPlugin(replay, options.mir.subsample, batch_size_mem, setup.scenario.tokenizer.pad_id, setup.train.intent_weight)]


MIR = continual_method(
    "mir", MIROptions, make_plugins, "maximally interfered retrieval: rehearse the buffer samples a virtual step hurts most"
)
