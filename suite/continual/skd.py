"""SKD: replay + sequence-level distillation on the rehearsal samples.

For each rehearsal sample the frozen teacher greedily decodes its own output sequence, and
the student's decoder is trained on it with teacher forcing (``losses/sequence_kd.py``),
reusing the student's encoder memory of the batch.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field

from suite.api import Options
from suite.continual.entries import MethodSetup, continual_method
from suite.continual.losses.sequence_kd import sequence_distillation_loss
from suite.continual.options import KDWeight
from suite.continual.replay import ReplayOptions, replay_plugin
from suite.continual.teacher import RehearsalDistillationPlugin


class SKDOptions(Options):
    replay: ReplayOptions = Field(default_factory=ReplayOptions)
    skd: KDWeight = Field(default_factory=KDWeight)


class SKDPlugin(RehearsalDistillationPlugin):
    name = "skd"

    def rehearsal_loss(self, strategy: Any, rehearsal: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            targets = self.teacher.greedy_decode(
                strategy.mb_x[rehearsal], strategy.mb_x_lens[rehearsal], strategy.max_decode_len, strategy.bos_id, strategy.eos_id
            )
        memory, mask = strategy.mb_memory[rehearsal], strategy.mb_memory_mask[rehearsal]
        logits = strategy.model.decode(memory, mask, targets[:, :-1])
        return sequence_distillation_loss(logits, targets[:, 1:], strategy.pad_id)


def make_plugins(options: SKDOptions, setup: MethodSetup) -> list[Any]:
    return [replay_plugin(options.replay, setup), SKDPlugin(options.skd.weight)]


SKD = continual_method("skd", SKDOptions, make_plugins, "replay + sequence-level distillation on rehearsal samples")
