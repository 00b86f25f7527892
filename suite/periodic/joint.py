"""rec-joint: retrain from the initial weights on every period so far, each period (the upper bound and the cost reference).

The model is put back to the weights it was initialized with (the run's seed) and its
optimizer is rebuilt before each period, then trained on the training samples of periods
0..k: what retraining a deployed recommender from scratch costs, growing with the data.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from suite.api import NoOptions
from suite.periodic.entries import periodic_method
from suite.periodic.method import PeriodData, PeriodMethod


class JointRetraining(PeriodMethod):
    name = "rec-joint"

    def __init__(self, options: Any, seed: int):
        super().__init__(options, seed)
        self.initial: dict[str, Any] | None = None

    def start(self, data: PeriodData, trainer: Any) -> None:
        self.initial = copy.deepcopy(data.model.state_dict())  # built from the run's seed: a resumed run builds the same

    def before_period(self, period: int, data: PeriodData, trainer: Any) -> None:
        if period > 0:
            data.model.load_state_dict(self.initial)
            trainer.optimizer = trainer._build_optimizer()
            if getattr(trainer, "augmenter_optimizer", None) is not None:
                trainer.augmenter_optimizer = trainer._build_augmenter_optimizer(trainer.config)

    def samples(self, period: int, data: PeriodData) -> np.ndarray:
        return np.concatenate([data.timeline.training(k) for k in range(period + 1)])


REC_JOINT = periodic_method(
    "rec-joint", NoOptions, JointRetraining, "retrain from scratch on all periods so far (upper bound, cost reference)"
)
