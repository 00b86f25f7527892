"""AKD: replay + audio feature distillation on the rehearsal samples.

The pooled encoder embedding of each rehearsal sample is pulled towards the frozen
teacher's (MSE, ``losses/feature_kd.py``), so the encoder keeps the old classes' features.
"""

from __future__ import annotations

from typing import Any

import torch

from suite.continual.losses.feature_kd import feature_distillation_loss
from suite.continual.teacher import TeacherPlugin


class AKDPlugin(TeacherPlugin):
    def __init__(self, weight: float = 1.0):
        super().__init__()
        self.weight = weight

    def before_backward(self, strategy: Any, **kwargs: Any) -> None:
        if not (self.weight and self.active(strategy)):
            return
        rehearsal = strategy.rehearsal_mask
        with torch.no_grad():
            teacher = self.teacher.pooled(*self.teacher.encode(strategy.mb_x[rehearsal], strategy.mb_x_lens[rehearsal]))
        loss = feature_distillation_loss(strategy.mb_pooled[rehearsal], teacher)
        strategy.loss = strategy.loss + self.weight * loss
