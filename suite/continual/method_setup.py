"""What a continual method's plugin factory receives (``MethodSetup``) and is (``PluginFactory``).

Apart from ``entries`` (which declares methods) and ``runner`` (which calls the factories), so
that neither imports the other's module to know the shape they share.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from suite.continual import options as opts


@dataclass(frozen=True)
class MethodSetup:
    """What a method's factory builds its plugins from, once the scenario and the model exist.

    ``scenario`` is the run's finished scenario, a ``suite.api.ContinualScenario`` (``.benchmark``
    with the Avalanche streams, ``.tokenizer``, ``.collate_fn``, ``.train_size``, ...).
    """

    scenario: Any
    model: Any
    train: opts.ContinualTrain
    seed: int


PluginFactory = Callable[[Any, MethodSetup], list]
"""``(method options, setup) -> [Avalanche plugins]``: what a continual method adds to the template."""
