"""LwF for a seq2seq model, on Avalanche's ``LwFPlugin``.

Avalanche's LwF calls ``prev_model(x)`` and distills class logits; here the previous model
is run teacher-forced on the same target prefix and its decoder logits are distilled at
every non-pad position (``losses/token_kd.py``). Avalanche's own ``after_training_exp``
(copy of the model, alpha schedule) is kept.
"""

from __future__ import annotations

import copy
from collections import defaultdict
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
    """Resumable: the previous model's weights, the experience count and the classes seen so far are its state."""

    _loaded_prev: dict[str, Any] | None = None

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        if self._loaded_prev is not None:
            self.lwf.prev_model = copy.deepcopy(strategy.model)
            self.lwf.prev_model.load_state_dict(self._loaded_prev)
            self._loaded_prev = None

    def state_dict(self) -> dict[str, Any]:
        lwf = self.lwf
        prev = lwf.prev_model.state_dict() if lwf.prev_model is not None else self._loaded_prev
        classes = {int(task): sorted(int(c) for c in found) for task, found in lwf.prev_classes_by_task.items()}
        return {"prev_model": prev, "expcount": lwf.expcount, "prev_classes_by_task": classes}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        lwf = self.lwf
        lwf.prev_model, self._loaded_prev = None, state["prev_model"]
        lwf.expcount = state["expcount"]
        lwf.prev_classes_by_task = defaultdict(set, {task: set(found) for task, found in state["prev_classes_by_task"].items()})

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
        strategy.add_loss("lwf", token_distillation_loss(strategy.mb_output, teacher_logits, valid, lwf.temperature), alpha)


def make_plugins(options: LwFOptions, setup: MethodSetup) -> list[Any]:
    return [Seq2SeqLwFPlugin(alpha=options.alpha, temperature=options.temperature)]


LWF = continual_method("lwf", LwFOptions, make_plugins, "learning without forgetting on the decoder logits (Avalanche LwFPlugin)")
