"""The frozen teacher shared by the distillation and contrastive methods.

The teacher is a copy of the model as it stood at the end of the previous experience,
in eval mode and with ``requires_grad`` off, so no loss can move it.
"""

from __future__ import annotations

import copy
from typing import Any

from avalanche.training.plugins import SupervisedPlugin
from torch import Tensor, nn


def frozen_copy(model: nn.Module) -> nn.Module:
    teacher = copy.deepcopy(model).eval()
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    return teacher


class TeacherPlugin(SupervisedPlugin):
    """Keeps ``self.teacher``: None during the first experience, then the last model frozen."""

    def __init__(self) -> None:
        super().__init__()
        self.teacher: nn.Module | None = None

    def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        self.teacher = frozen_copy(strategy.model)

    def active(self, strategy: Any) -> bool:
        """A teacher exists and the batch holds rehearsal samples."""
        return self.teacher is not None and bool(strategy.rehearsal_mask.any())


class RehearsalDistillationPlugin(TeacherPlugin):
    """Adds ``weight * rehearsal_loss(strategy)`` to the loss whenever a teacher and rehearsal samples exist."""

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__()
        self.weight = weight

    def before_backward(self, strategy: Any, **kwargs: Any) -> None:
        if self.weight and self.active(strategy):
            strategy.loss = strategy.loss + self.weight * self.rehearsal_loss(strategy, strategy.rehearsal_mask)

    def rehearsal_loss(self, strategy: Any, rehearsal: Tensor) -> Tensor:
        """The distillation loss on the batch's rehearsal samples (``rehearsal`` is their mask)."""
        raise NotImplementedError
