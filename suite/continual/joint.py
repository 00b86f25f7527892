"""Joint training (the upper bound): one training pass over every experience's data at once.

The runner trains experience after experience for every method; this plugin turns that into
joint training. At the first experience it replaces the adapted dataset with the concatenation
of all experiences (and marks every class and experience as seen); at every later experience it
stops training before the first epoch (Avalanche's ``stop_training``), so the model is trained
once and evaluated once, on everything.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from avalanche.benchmarks.utils.utils import concat_datasets
from avalanche.training.plugins import SupervisedPlugin

from suite.api import Options
from suite.continual.entries import MethodSetup, continual_method


class JointOptions(Options):
    """All experiences at once (the upper bound)."""


class JointTrainingPlugin(SupervisedPlugin):
    """Trains on the union of ``experiences`` at the first one, and not at all at the others."""

    def __init__(self, experiences: Sequence[Any]):
        super().__init__()
        self.experiences = list(experiences)
        self.first = self.experiences[0].current_experience

    def after_train_dataset_adaptation(self, strategy: Any, **kwargs: Any) -> None:
        if strategy.experience.current_experience != self.first:
            return
        strategy.adapted_dataset = concat_datasets([exp.dataset for exp in self.experiences])
        classes = sorted({int(c) for exp in self.experiences for c in exp.classes_in_this_experience})
        strategy.current_classes = torch.as_tensor(classes, dtype=torch.long)
        strategy.seen_experiences.update(exp.current_experience for exp in self.experiences)

    def before_training_epoch(self, strategy: Any, **kwargs: Any) -> None:
        if strategy.experience.current_experience != self.first:
            strategy.stop_training()


def make_plugins(options: JointOptions, setup: MethodSetup) -> list[Any]:
    return [JointTrainingPlugin(setup.scenario.benchmark.train_stream)]


JOINT = continual_method("joint", JointOptions, make_plugins, "train once on all experiences together (upper bound)")
