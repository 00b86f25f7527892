"""ER-ACE, experience replay with the asymmetric cross-entropy (Caccia et al., ICLR 2022), on the intent token.

The paper's loss: on a batch of new and rehearsal samples, the new samples' cross-entropy is
taken over the classes present among the batch's new samples only (the other classes' logits
masked out of the softmax), the rehearsal samples' over every class. So new data no longer push
the old classes' logits down, which is what drifts old representations at each task switch.

On the seq2seq model the classes live in one place: the first decoded token, an intent token
of the tokenizer (``<intent:...>``, ``scenarios/slu/tokenizer.py``). Here, for each new sample
of a batch that also holds rehearsal samples, the intent-position logits of every intent token
absent from the batch's new samples are set to -inf before the template's token cross-entropy;
the vocabulary's other tokens (words, specials) stay in that softmax (they are not classes,
and the model must keep them off the intent position), the transcript positions are unchanged,
and the rehearsal samples get the full loss. As in the authors' code, the loss is the ordinary
mean over the mixed batch (Avalanche's ``ACECriterion`` averages the two halves instead); as in
Avalanche's ``ER_ACE``, batches without rehearsal samples (the first experience) get the plain
loss. The buffer and the batches are exactly ``replay``'s.

A masked logit is -inf, so the label-smoothing term (a mean over all logits) would be infinite:
ER-ACE requires ``train.label_smoothing: 0``, checked before any run starts.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from avalanche.training.plugins import SupervisedPlugin
from pydantic import Field
from torch import Tensor

from suite.api import Options
from suite.continual.entries import MethodSetup, check_point, continual_method
from suite.continual.replay import ReplayOptions, replay_plugin
from suite.errors import SpecError


class ERACEOptions(Options):
    replay: ReplayOptions = Field(default_factory=ReplayOptions)


def mask_absent_intents(logits: Tensor, intent_targets: Tensor, new_rows: Tensor, intent_ids: Tensor) -> Tensor:
    """``logits`` [B, L, V] with, for the rows ``new_rows``, the position-0 logits of intents absent from their targets at -inf.

    ``intent_targets`` [B]: each sample's gold intent token; ``intent_ids``: every intent token id.
    """
    present = torch.isin(intent_ids, intent_targets[new_rows])
    absent = torch.zeros(logits.size(-1), dtype=torch.bool, device=logits.device)
    absent[intent_ids[~present]] = True
    is_new = torch.zeros(logits.size(0), dtype=torch.bool, device=logits.device)
    is_new[new_rows] = True
    first = logits[:, :1].masked_fill((is_new[:, None] & absent[None, :]).unsqueeze(1), float("-inf"))
    return torch.cat([first, logits[:, 1:]], dim=1)


class ACEPlugin(SupervisedPlugin):
    """Masks the new samples' absent intents in the decoder's output, between the forward pass and the criterion."""

    def __init__(self, intent_ids: list[int]):
        super().__init__()
        self.intent_ids = torch.as_tensor(intent_ids, dtype=torch.long)

    def after_forward(self, strategy: Any, **kwargs: Any) -> None:
        if not (strategy.is_training and strategy.mb_has_rehearsal and strategy.mb_has_new):
            return
        intent_ids = self.intent_ids.to(strategy.device)
        strategy.mb_output = mask_absent_intents(strategy.mb_output, strategy.mb_tokens[:, 1], strategy.mb_new_index, intent_ids)


def make_plugins(options: ERACEOptions, setup: MethodSetup) -> list[Any]:
    tokenizer = setup.scenario.tokenizer
    intent_ids = [tokenizer.intent_id(label) for label in tokenizer.labels]
    return [replay_plugin(options.replay, setup), ACEPlugin(intent_ids)]


def check_er_ace(point: Any) -> None:
    check_point(point)
    if point.train_options.label_smoothing:
        raise SpecError(
            f"method er-ace masks absent intents' logits to -inf, where label smoothing is infinite: "
            f"train.label_smoothing must be 0, got {point.train_options.label_smoothing}"
        )


ER_ACE = dataclasses.replace(
    continual_method(
        "er-ace", ERACEOptions, make_plugins, "ER-ACE: replay, new samples' intent softmax restricted to the batch's new intents"
    ),
    check=check_er_ace,
)
