"""LwF for a seq2seq model, on Avalanche's ``LwFPlugin``.

Avalanche's LwF calls ``prev_model(x)`` and distills class logits; here the previous model
is run teacher-forced on the same target prefix and its decoder logits are distilled at
every non-pad position (``losses/token_kd.py``). Avalanche's own ``after_training_exp``
(copy of the model, alpha schedule) is kept.
"""

from __future__ import annotations

from typing import Any

import torch
from avalanche.training.plugins import LwFPlugin
from pydantic import Field

from suite.api import Options
from suite.continual.entries import MethodSetup, continual_method
from suite.continual.losses.token_kd import token_distillation_loss


class LwFOptions(Options):
    alpha: float = Field(1.0, ge=0)
    temperature: float = Field(2.0, gt=0)


class Seq2SeqLwFPlugin(LwFPlugin):
    def before_backward(self, strategy: Any, **kwargs: Any) -> None:
        lwf = self.lwf
        if lwf.prev_model is None:
            return
        alpha = lwf.alpha[lwf.expcount] if isinstance(lwf.alpha, (list, tuple)) else lwf.alpha
        tokens_in = strategy.mb_tokens[:, :-1]
        with torch.no_grad():
            lwf.prev_model.eval()
            teacher_logits = lwf.prev_model(strategy.mb_x, strategy.mb_x_lens, tokens_in)
        valid = tokens_in != strategy.pad_id
        strategy.loss = strategy.loss + alpha * token_distillation_loss(strategy.mb_output, teacher_logits, valid, lwf.temperature)


def make_plugins(options: LwFOptions, setup: MethodSetup) -> list[Any]:
    return [Seq2SeqLwFPlugin(alpha=options.alpha, temperature=options.temperature)]


LWF = continual_method("lwf", LwFOptions, make_plugins, "learning without forgetting on the decoder logits (Avalanche LwFPlugin)")
