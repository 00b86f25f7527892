"""A continual method added from outside the suite: this one file plus one entry point.

Installed as a distribution whose ``entry_points.txt`` holds the single line

    [suite.methods]
    toy-lr-decay = toy_lr_decay:LR_DECAY

it appears in ``suite list`` and runs like any built-in method, with no change to the suite.
The method: fine-tuning whose learning rate is multiplied by ``factor`` at the start of every
experience after the first.
"""

from __future__ import annotations

from typing import Any

from avalanche.training.plugins import SupervisedPlugin
from pydantic import Field

from suite.api import Options
from suite.continual.entries import MethodSetup, continual_method


class LRDecayOptions(Options):
    factor: float = Field(0.5, gt=0.0, le=1.0, description="learning-rate factor applied at each new experience")


class LRDecayPlugin(SupervisedPlugin):
    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        if strategy.clock.train_exp_counter > 0:
            for group in strategy.optimizer.param_groups:
                group["lr"] *= self.factor


def make_plugins(options: LRDecayOptions, setup: MethodSetup) -> list[Any]:
    return [LRDecayPlugin(options.factor)]


LR_DECAY = continual_method("toy-lr-decay", LRDecayOptions, make_plugins, "fine-tuning with a learning rate that decays per experience")
