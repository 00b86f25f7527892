"""Joint training (the upper bound): one training run on every experience's data at once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from avalanche.benchmarks.utils.utils import concat_datasets
from avalanche.training.plugins import SupervisedPlugin


class JointDataPlugin(SupervisedPlugin):
    """Replaces the adapted dataset with the concatenation of all the given experiences."""

    def __init__(self, experiences: Sequence[Any]):
        super().__init__()
        self.experiences = list(experiences)

    def after_train_dataset_adaptation(self, strategy: Any, **kwargs: Any) -> None:
        strategy.adapted_dataset = concat_datasets([exp.dataset for exp in self.experiences])
        classes = sorted({int(c) for exp in self.experiences for c in exp.classes_in_this_experience})
        strategy.current_classes = torch.as_tensor(classes, dtype=torch.long)
        strategy.seen_experiences.update(exp.current_experience for exp in self.experiences)
