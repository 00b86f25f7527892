"""Resume a continual run where it stopped, with the metrics of a run that never stopped.

``RunCheckpoint`` is an Avalanche plugin that saves the whole state of a run through the run's
``CheckpointStore`` after every finished epoch (and, called by the runner, after every finished
experience and its evaluation): the model, the optimizer, the state of every stateful plugin
(``state_dict``: the replay buffer as sample ids, teachers' weights, EWC's and LwF's state), the
metrics' accumulated rows, Avalanche's clock, the experiences seen, every random generator
(Python, NumPy, torch: the data order and dropout come from them; Avalanche's ``RNGManager``
drives the same global generators and holds no state of its own), and the seconds trained so far
(``suite.run_clock``).

Restoring happens in steps, because of the order of Avalanche's hooks:

- ``restore`` (before training resumes): weights, plugin and metric states, the clock's run-wide
  counters, the seen experiences;
- at the next ``before_training_exp``, after Avalanche has (re)made the optimizer (which resets
  its state in a fresh process): the optimizer state. Resuming at an experience boundary, it is
  restored *before* the method's plugins run their ``before_training_exp`` (they act on it as
  they did in the uninterrupted run: a plugin that lowers the learning rate at each new
  experience lowers the restored one); resuming within an experience, *after* them (their
  effect at this experience's start is already in the saved state);
- last, after Avalanche's ``Clock`` reset its counters for the experience: the clock's counters
  within the experience and the random generators, so that the next epoch draws exactly the
  batches and dropout masks the uninterrupted run drew.

So ``attach`` puts a small companion plugin first in the strategy's list and the checkpoint
itself last, after the ``Clock``: it also saves once the epoch's metrics were logged and the
clock has counted the epoch. A method plugin's ``before_training_exp`` runs again when a run
resumes within an experience: keep it idempotent, or keep its effect in its ``state_dict``.
"""

from __future__ import annotations

from typing import Any

from avalanche.training.plugins import EvaluationPlugin, SupervisedPlugin
from avalanche.training.plugins.clock import Clock
from avalanche.training.templates.base_sgd import PeriodicEval

from suite.run_clock import STATE_KEY, RunClock
from suite.seeding import restore_rng_state, rng_state

FORMAT = 1
CLOCK_RUN_COUNTERS = ("train_iterations", "train_exp_counter", "total_iterations")
CLOCK_EXPERIENCE_COUNTERS = ("train_exp_epochs", "train_exp_iterations")


def method_plugins(strategy: Any) -> list[Any]:
    """The strategy's plugins that belong to the method (not Avalanche's evaluator, clock and periodic eval, or the checkpoint's)."""
    return [p for p in strategy.plugins if not isinstance(p, (EvaluationPlugin, Clock, PeriodicEval, RunCheckpoint, _RestoreFirst))]


class _RestoreFirst(SupervisedPlugin):
    """The checkpoint's first-in-line part: the optimizer of a run resumed at an experience boundary."""

    def __init__(self, checkpoint: RunCheckpoint):
        super().__init__()
        self.checkpoint = checkpoint

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        pending = self.checkpoint._pending
        if pending is not None and pending["position"]["evaluated"]:
            strategy.optimizer.load_state_dict(pending["optimizer"])


class RunCheckpoint(SupervisedPlugin):
    """Saves the run's resume state after every epoch (``save`` after every experience); restores a loaded one."""

    def __init__(self, store: Any | None, metrics: dict[str, Any], clock: RunClock | None = None):
        super().__init__()
        self.store = store
        self.metrics = metrics
        self.clock = clock or RunClock()
        self._pending: dict[str, Any] | None = None

    def attach(self, strategy: Any) -> None:
        """Join ``strategy``: a companion first in its plugin list, this checkpoint last (after Avalanche's clock)."""
        strategy.plugins.insert(0, _RestoreFirst(self))
        strategy.plugins.append(self)

    # ---- saving ---------------------------------------------------------------------------
    def after_training_epoch(self, strategy: Any, **kwargs: Any) -> None:
        experience = strategy.experience.current_experience
        self.save(strategy, {"experience": experience, "epochs": strategy.clock.train_exp_epochs, "evaluated": False})

    def save(self, strategy: Any, position: dict[str, Any]) -> None:
        """Write the state at ``position`` (experience index, epochs done in it, evaluated yet)."""
        if self.store is not None:
            self.store.save(self.capture(strategy, position))

    def capture(self, strategy: Any, position: dict[str, Any]) -> dict[str, Any]:
        clock = strategy.clock
        return {
            "format": FORMAT,
            "position": dict(position),
            "model": strategy.model.state_dict(),
            "optimizer": strategy.optimizer.state_dict(),
            "plugin_types": method_plugins_names(method_plugins(strategy)),
            "plugins": [_state_of(plugin) for plugin in method_plugins(strategy)],
            "metrics": {name: metric.state_dict() for name, metric in self.metrics.items()},
            "clock": {name: int(getattr(clock, name)) for name in CLOCK_RUN_COUNTERS + CLOCK_EXPERIENCE_COUNTERS},
            "seen_experiences": sorted(int(e) for e in strategy.seen_experiences),
            "rng": rng_state(),
            STATE_KEY: self.clock.seconds(),
        }

    # ---- restoring ------------------------------------------------------------------------
    def restore(self, strategy: Any, state: dict[str, Any]) -> tuple[int, int]:
        """Put ``state`` back; returns (the experience to train next, epochs of it already done)."""
        if state.get("format") != FORMAT:
            raise ValueError(f"resume checkpoint format {state.get('format')!r}, expected {FORMAT}")
        plugins = method_plugins(strategy)
        if method_plugins_names(plugins) != state["plugin_types"]:
            raise ValueError(
                f"the resume checkpoint was saved by plugins {state['plugin_types']}, this run has {method_plugins_names(plugins)}"
            )
        strategy.model.load_state_dict(state["model"])
        for plugin, plugin_state in zip(plugins, state["plugins"]):
            if plugin_state is not None:
                plugin.load_state_dict(plugin_state)
        for name, metric in self.metrics.items():
            metric.load_state_dict(state["metrics"][name])
        for name in CLOCK_RUN_COUNTERS:
            setattr(strategy.clock, name, state["clock"][name])
        strategy.seen_experiences = set(state["seen_experiences"])
        self.clock.resume(state)
        self._pending = state
        position = state["position"]
        if position["evaluated"]:
            return position["experience"] + 1, 0
        return position["experience"], position["epochs"]

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        if self._pending is None:
            return
        state, self._pending = self._pending, None
        if not state["position"]["evaluated"]:
            strategy.optimizer.load_state_dict(state["optimizer"])
            for name in CLOCK_EXPERIENCE_COUNTERS:
                setattr(strategy.clock, name, state["clock"][name])
        restore_rng_state(state["rng"])


def method_plugins_names(plugins: list[Any]) -> list[str]:
    return [type(plugin).__name__ for plugin in plugins]


def _state_of(plugin: Any) -> dict[str, Any] | None:
    return plugin.state_dict() if callable(getattr(plugin, "state_dict", None)) else None
