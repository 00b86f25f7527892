"""Fine-tuning (the lower bound): train on each experience in turn, nothing against forgetting."""

from __future__ import annotations

from typing import Any

from suite.api import Options
from suite.continual.entries import MethodSetup, continual_method


class FinetuneOptions(Options):
    """Plain fine-tuning, experience after experience (the lower bound)."""


def make_plugins(options: FinetuneOptions, setup: MethodSetup) -> list[Any]:
    return []


FINETUNE = continual_method("finetune", FinetuneOptions, make_plugins, "train on each experience in turn (lower bound)")
