"""AKD: replay + audio feature distillation on the rehearsal samples.

The pooled encoder embedding of each rehearsal sample is pulled towards the frozen
teacher's (MSE, ``losses/feature_kd.py``), so the encoder keeps the old classes' features.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field

from suite.api import Options
from suite.continual.entries import MethodSetup, continual_method
from suite.continual.losses.feature_kd import feature_distillation_loss
from suite.continual.options import KDWeight
from suite.continual.replay import ReplayOptions, replay_plugin
from suite.continual.teacher import RehearsalDistillationPlugin


class AKDOptions(Options):
    replay: ReplayOptions = Field(default_factory=ReplayOptions)
    akd: KDWeight = Field(default_factory=KDWeight)


class AKDPlugin(RehearsalDistillationPlugin):
    name = "akd"

    def rehearsal_loss(self, strategy: Any, rehearsal: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            teacher = self.teacher.pooled(*self.teacher.encode(strategy.mb_x[rehearsal], strategy.mb_x_lens[rehearsal]))
        return feature_distillation_loss(strategy.mb_pooled[rehearsal], teacher)


def make_plugins(options: AKDOptions, setup: MethodSetup) -> list[Any]:
    return [replay_plugin(options.replay, setup), AKDPlugin(options.akd.weight)]


AKD = continual_method("akd", AKDOptions, make_plugins, "replay + audio feature distillation on rehearsal samples")
