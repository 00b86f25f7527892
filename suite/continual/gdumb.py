"""GDumb (Prabhu, Torr, Dokania; ECCV 2020): a class-balanced buffer, and a model retrained from scratch on it alone.

At every experience the buffer takes the experience's samples class-balanced (the suite's
``class_balanced`` policy, Avalanche's ``ClassBalancedBuffer``: equal slots per seen class, a
reservoir within each class, where the paper's greedy sampler keeps the first samples that fit),
the model is reset to its initial weights, the optimizer's state is cleared, and the model trains
``train.epochs`` epochs of ``gdumb.passes`` passes each on the buffer only: new data reach the
model only through the buffer. Nothing in GDumb assumes a classifier, so on the seq2seq model it
is the paper's method with the token cross-entropy as the loss.

"From scratch" here means the same initial weights at every experience: the weights the model
had when the run started (drawn from the run's seed), kept by the plugin. So two runs with the
same seed start every experience from identical weights, and a resumed run does too (the
initial weights are part of the plugin's saved state).

Avalanche's ``GDumbPlugin`` does the same with a deep copy of the initial model assigned to
``strategy.model``; the suite resets the model in place instead (``load_state_dict``), so the
optimizer, the runner's final model and the resume checkpoint keep pointing at the one model.
The buffer is the suite's resumable replay buffer (``Seq2SeqReplayPlugin``): it is saved as
sample ids.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from avalanche.benchmarks.scenarios.dataset_scenario import DatasetExperience
from avalanche.benchmarks.utils.utils import concat_datasets
from pydantic import Field, field_validator, model_validator

from suite.api import Options
from suite.continual.entries import MethodSetup, continual_method
from suite.continual.replay import ReplayOptions, Seq2SeqReplayPlugin, buffer_size, make_storage_policy, with_sample_ids


class GDumbParams(Options):
    passes: int = Field(
        1,
        ge=1,
        description="passes over the buffer per training epoch: GDumb trains a small buffer to convergence (the paper: up to 256 "
        "epochs), so a budget in steps equal to another method's is passes = its samples per experience / the buffer's",
    )


class GDumbOptions(Options):
    """``replay.size``: the buffer (a count or a fraction of the training set); its policy is class-balanced."""

    replay: ReplayOptions = Field(default_factory=lambda: ReplayOptions(policy="class_balanced"))
    gdumb: GDumbParams = Field(default_factory=GDumbParams)

    @field_validator("replay", mode="before")
    @classmethod
    def _class_balanced_by_default(cls, replay: Any) -> Any:
        return {"policy": "class_balanced", **replay} if isinstance(replay, dict) else replay

    @model_validator(mode="after")
    def _gdumb_buffer(self) -> GDumbOptions:
        if self.replay.policy != "class_balanced":
            raise ValueError(
                f"GDumb's buffer is class-balanced by definition; replay.policy must be class_balanced, got '{self.replay.policy}'"
            )
        if self.replay.batch_size_mem is not None:
            raise ValueError("GDumb trains on its buffer alone (train.batch_size samples per batch); replay.batch_size_mem does not apply")
        return self


def buffer_seed(seed: int, experience: int) -> int:
    """The seed of the buffer's reservoir draws at ``experience``: fixed by the run's seed, apart from the global stream.

    The buffer is filled before training, where Avalanche's hooks come before the resume
    checkpoint restores the global generators; drawing from a generator of its own, the update
    is the same in a resumed run and takes nothing from the stream that orders the batches.
    """
    return seed * 1_000_003 + experience


class GDumbPlugin(Seq2SeqReplayPlugin):
    """Before each experience: buffer update, model reset to its initial weights, optimizer state cleared; train on the buffer.

    Each training epoch goes ``passes`` times over the buffer (one shuffled loader over its copies).

    An experience the plugin has already started (a run resumed within it) is neither reset
    nor added to the buffer again: its state came back with the checkpoint.
    """

    def __init__(self, mem_size: int, collate_fn: Any, experiences: Any = (), seed: int = 0, passes: int = 1):
        super().__init__(mem_size, collate_fn, make_storage_policy("class_balanced", mem_size, collate_fn), experiences=experiences)
        self.seed, self.passes = seed, passes
        self.initial_weights: dict[str, Any] | None = None
        self.started: set[int] = set()
        self._fresh = False

    def before_train_dataset_adaptation(self, strategy: Any, **kwargs: Any) -> None:
        index = strategy.experience.current_experience
        self._fresh = index not in self.started
        if not self._fresh:
            return
        if self.initial_weights is None:
            self.initial_weights = copy.deepcopy(strategy.model.state_dict())
        else:
            strategy.model.load_state_dict(self.initial_weights)

    def after_train_dataset_adaptation(self, strategy: Any, **kwargs: Any) -> None:
        experience = strategy.experience
        if self._fresh:
            tagged = DatasetExperience(dataset=with_sample_ids(experience), current_experience=experience.current_experience)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(buffer_seed(self.seed, experience.current_experience))
                self.storage_policy.post_adapt(strategy, tagged)
            self.started.add(experience.current_experience)
        strategy.adapted_dataset = concat_datasets([self.storage_policy.buffer.train()] * self.passes)

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        """From scratch: Adam's moments of the last experience belong to weights that are gone."""
        if self._fresh:
            strategy.make_optimizer(reset_optimizer_state=True)

    def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        """The buffer was updated before training."""

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "initial_weights": self.initial_weights, "started": sorted(self.started)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.initial_weights = state["initial_weights"]
        self.started = set(state["started"])


def make_plugins(options: GDumbOptions, setup: MethodSetup) -> list[Any]:
    scenario = setup.scenario
    size = buffer_size(options.replay.size, scenario.train_size)
    train_stream = scenario.benchmark.train_stream
    return [GDumbPlugin(size, scenario.collate_fn, experiences=train_stream, seed=setup.seed, passes=options.gdumb.passes)]


GDUMB = continual_method("gdumb", GDumbOptions, make_plugins, "GDumb: retrain from the initial weights on a class-balanced buffer alone")
