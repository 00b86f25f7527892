"""COCONUT (Cappellazzo et al., Findings of ACL 2024): replay + NSPT + MM.

Added to a replay strategy, this plugin adds two terms to the seq2seq loss before backward:

- NSPT on the rehearsal samples: student anchors, teacher positives, student negatives
  (``losses/nspt.py``), through the ``nspt_head`` projection; off in the first experience,
  when there is no teacher;
- MM on the new samples: audio-text SupCon between ``mm_audio_head(a_i)`` and
  ``mm_text_head(e_j)`` (``losses/mm.py``).

    L = L_seq2seq + nspt_weight * L_nspt + mm_weight * L_mm

Sequence-level distillation (``skd.py``) composes with it as a separate plugin.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field

from suite.api import Options
from suite.continual.entries import MethodSetup, continual_method
from suite.continual.losses.mm import mm_loss
from suite.continual.losses.nspt import nspt_loss
from suite.continual.options import KDWeight
from suite.continual.replay import ReplayOptions, replay_plugin
from suite.continual.skd import SKDPlugin
from suite.continual.teacher import TeacherPlugin


class LossWeight(Options):
    weight: float = Field(1.0, ge=0)
    temperature: float = Field(0.1, gt=0)


class CoconutOptions(Options):
    """Replay + NSPT (rehearsal samples) + MM (new samples), optionally + SKD (weight > 0)."""

    replay: ReplayOptions = Field(default_factory=ReplayOptions)
    nspt: LossWeight = Field(default_factory=lambda: LossWeight(weight=1.0, temperature=0.1))
    mm: LossWeight = Field(default_factory=lambda: LossWeight(weight=0.1, temperature=0.1))
    skd: KDWeight = Field(default_factory=lambda: KDWeight(weight=0.0))


class CoconutPlugin(TeacherPlugin):
    """NSPT (rehearsal anchors, frozen teacher) + MM (new samples) for ``Seq2SeqTemplate``."""

    def __init__(self, nspt_weight: float = 1.0, nspt_temperature: float = 0.1, mm_weight: float = 0.1, mm_temperature: float = 0.1):
        super().__init__()
        self.nspt_weight, self.nspt_temperature = nspt_weight, nspt_temperature
        self.mm_weight, self.mm_temperature = mm_weight, mm_temperature
        self.last_nspt = 0.0
        self.last_mm = 0.0

    def before_backward(self, strategy: Any, **kwargs: Any) -> None:
        pooled, labels, rehearsal = strategy.mb_pooled, strategy.mb_y, strategy.rehearsal_mask
        if self.nspt_weight and self.active(strategy):
            loss = self.nspt(strategy, pooled, labels, rehearsal)
            self.last_nspt = float(loss.detach())
            strategy.loss = strategy.loss + self.nspt_weight * loss
        new = ~rehearsal
        if self.mm_weight and bool(new.any()):
            loss = self.mm(strategy, pooled[new], labels[new], strategy.mb_tokens[new])
            self.last_mm = float(loss.detach())
            strategy.loss = strategy.loss + self.mm_weight * loss

    def nspt(self, strategy: Any, pooled: torch.Tensor, labels: torch.Tensor, rehearsal: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            memory, mask = self.teacher.encode(strategy.mb_x[rehearsal], strategy.mb_x_lens[rehearsal])
            teacher_z = self.teacher.nspt_head(self.teacher.pooled(memory, mask))
        student_z = strategy.model.nspt_head(pooled)
        return nspt_loss(student_z, teacher_z, labels, rehearsal, self.nspt_temperature)

    def mm(self, strategy: Any, pooled_new: torch.Tensor, labels_new: torch.Tensor, tokens_new: torch.Tensor) -> torch.Tensor:
        model = strategy.model
        audio = model.mm_audio_head(pooled_new)
        text = model.mm_text_head(model.text_embedding(tokens_new))
        return mm_loss(audio, text, labels_new, self.mm_temperature)


def make_plugins(options: CoconutOptions, setup: MethodSetup) -> list[Any]:
    plugins: list[Any] = [
        replay_plugin(options.replay, setup),
        CoconutPlugin(options.nspt.weight, options.nspt.temperature, options.mm.weight, options.mm.temperature),
    ]
    if options.skd.weight > 0:
        plugins.append(SKDPlugin(options.skd.weight))
    return plugins


COCONUT = continual_method("coconut", CoconutOptions, make_plugins, "replay + NSPT + multimodal audio-text contrastive loss (COCONUT)")
