"""The frozen teacher shared by the distillation and contrastive methods.

The teacher is a copy of the model as it stood at the end of the previous experience,
in eval mode and with ``requires_grad`` off, so no loss can move it.
"""

from __future__ import annotations

import copy
from typing import Any

from avalanche.training.plugins import SupervisedPlugin
from avalanche.training.utils import freeze_everything
from torch import Tensor, nn


def frozen_copy(model: nn.Module) -> nn.Module:
    """A deep copy in eval mode with every parameter's ``requires_grad`` off (Avalanche's ``freeze_everything``)."""
    teacher = copy.deepcopy(model)
    freeze_everything(teacher)
    return teacher


def frozen_from_state(module: nn.Module, state: dict[str, Any]) -> nn.Module:
    """A frozen copy of ``module`` holding the weights ``state``."""
    copy_ = frozen_copy(module)
    copy_.load_state_dict(state)
    return copy_


class TeacherPlugin(SupervisedPlugin):
    """Keeps ``self.teacher``: None during the first experience, then the last model frozen.

    Resumable: ``state_dict`` holds the teacher's weights; after ``load_state_dict`` the teacher
    is rebuilt from them at the next experience start, when the strategy's model is at hand.
    """

    def __init__(self) -> None:
        super().__init__()
        self.teacher: nn.Module | None = None
        self._loaded_teacher: dict[str, Any] | None = None

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        if self._loaded_teacher is not None:
            self.teacher = frozen_from_state(strategy.model, self._loaded_teacher)
            self._loaded_teacher = None

    def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        self.teacher = frozen_copy(strategy.model)

    def state_dict(self) -> dict[str, Any]:
        teacher = self.teacher.state_dict() if self.teacher is not None else self._loaded_teacher
        return {"teacher": teacher}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.teacher, self._loaded_teacher = None, state["teacher"]

    def active(self, strategy: Any) -> bool:
        """A teacher exists and the batch holds rehearsal samples."""
        return self.teacher is not None and strategy.mb_has_rehearsal


class RehearsalDistillationPlugin(TeacherPlugin):
    """Adds ``weight * rehearsal_loss(strategy)`` to the loss (term ``name``) whenever a teacher and rehearsal samples exist."""

    name = "kd"

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__()
        self.weight = weight

    def before_backward(self, strategy: Any, **kwargs: Any) -> None:
        if self.weight and self.active(strategy):
            strategy.add_loss(self.name, self.rehearsal_loss(strategy, strategy.mb_rehearsal_index), self.weight)

    def rehearsal_loss(self, strategy: Any, rehearsal: Tensor) -> Tensor:
        """The distillation loss on the batch's rehearsal samples (``rehearsal``: their row indices)."""
        raise NotImplementedError
