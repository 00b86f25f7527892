"""Experience replay for seq2seq SLU on Avalanche's own ``ReplayPlugin`` and storage policies.

Only the loader changes: Avalanche's ``ReplayDataLoader`` is kept (new and buffer samples
concatenated in each batch) but handed the scenario's ``collate_fn``, which pads the
variable-length audio. Buffer policies map onto Avalanche's storage policies:

- ``reservoir``: ``ReservoirSamplingBuffer`` (uniform over everything seen);
- ``class_balanced``: ``ClassBalancedBuffer`` (equal slots per seen class);
- ``herding``: ``ParametricBuffer`` grouped by class with iCaRL herding on the pooled
  encoder embedding (``PooledHerding``), recomputed with the current model at each update.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from avalanche.benchmarks.scenarios.dataset_scenario import DatasetExperience
from avalanche.benchmarks.utils import AvalancheDataset
from avalanche.benchmarks.utils.data_loader import ReplayDataLoader
from avalanche.benchmarks.utils.utils import concat_datasets
from avalanche.training.plugins import ReplayPlugin
from avalanche.training.storage_policy import (
    BalancedExemplarsBuffer,
    ClassBalancedBuffer,
    ExemplarsBuffer,
    HerdingSelectionStrategy,
    ParametricBuffer,
    ReservoirSamplingBuffer,
    _ParametricSingleBuffer,
)
from pydantic import Field, field_validator
from torch.utils.data import DataLoader

from suite.api import Options
from suite.continual.entries import MethodSetup, continual_method

POLICIES = ("reservoir", "class_balanced", "herding")


class ReplayOptions(Options):
    """Rehearsal buffer: ``size`` a count (int) or a fraction of the training set (float < 1)."""

    size: int | float = 200
    policy: Literal["reservoir", "class_balanced", "herding"] = "reservoir"
    batch_size_mem: int | None = Field(None, ge=1, description="rehearsal samples per batch (default: train.batch_size)")

    @field_validator("size")
    @classmethod
    def _count_or_fraction(cls, size: int | float) -> int | float:
        if isinstance(size, float) and not 0.0 < size < 1.0:
            raise ValueError("a fractional buffer size must lie in (0, 1); use an integer for a count")
        if isinstance(size, int) and size < 1:
            raise ValueError("the buffer must hold at least one sample")
        return size


class ReplayMethodOptions(Options):
    replay: ReplayOptions = Field(default_factory=ReplayOptions)


def buffer_size(size: int | float, train_size: int) -> int:
    """A count as given, or a fraction of the training set (the paper's 1% and 2%)."""
    if isinstance(size, float):
        return max(1, round(size * train_size))
    return int(size)


class PooledHerding(HerdingSelectionStrategy):
    """iCaRL herding on the masked-mean encoder embedding of the current model.

    Avalanche's feature-based selection calls ``model(x)`` through a layer hook, which a
    seq2seq model cannot serve (it needs the lengths); this computes the features itself
    and reuses Avalanche's herding order.
    """

    def __init__(self, collate_fn: Any, batch_size: int = 64):
        self.collate_fn = collate_fn
        self.batch_size = batch_size

    @torch.no_grad()
    def make_sorted_indices(self, strategy: Any, data: Any) -> list[int]:
        model = strategy.model
        was_training = model.training
        model.eval()
        features = []
        for batch in DataLoader(data, batch_size=self.batch_size, collate_fn=self.collate_fn):
            x, x_lens = batch[0].to(strategy.device), batch[2].to(strategy.device)
            features.append(model.pooled(*model.encode(x, x_lens)).cpu())
        model.train(was_training)
        return self.make_sorted_indices_from_features(torch.cat(features))


def make_storage_policy(policy: str, max_size: int, collate_fn: Any) -> ExemplarsBuffer:
    """The Avalanche storage policy named ``policy`` holding at most ``max_size`` samples."""
    if policy == "reservoir":
        return ReservoirSamplingBuffer(max_size)
    if policy == "class_balanced":
        return ClassBalancedBuffer(max_size, adaptive_size=True)
    if policy == "herding":
        return ParametricBuffer(max_size, groupby="class", selection_strategy=PooledHerding(collate_fn))
    raise ValueError(f"unknown buffer policy '{policy}'; known: {', '.join(POLICIES)}")


SAMPLE_ID = "replay_sample_id"
"""Data attribute naming each buffered sample: ``experience << 32 | position in the experience's dataset``."""


def with_sample_ids(experience: Any) -> AvalancheDataset:
    """The experience's dataset with every sample's id attached (a data attribute: samples are unchanged)."""
    dataset = experience.dataset
    return dataset.update_data_attribute(SAMPLE_ID, [(experience.current_experience << 32) | i for i in range(len(dataset))])


def sample_ids(dataset: AvalancheDataset) -> list[int]:
    return [int(i) for i in getattr(dataset, SAMPLE_ID)] if len(dataset) else []


class Seq2SeqReplayPlugin(ReplayPlugin):
    """Avalanche's ``ReplayPlugin`` with a loader that pads variable-length audio, and a resumable buffer.

    The buffer is saved (``state_dict``) as the ids of the samples it holds, with the storage
    policy's own state (reservoir weights, class groups); ``load_state_dict`` rebuilds it from
    ``experiences`` (the training stream), sample for sample and in the same order.
    """

    def __init__(
        self,
        mem_size: int,
        collate_fn: Any,
        storage_policy: ExemplarsBuffer,
        batch_size_mem: int | None = None,
        experiences: Sequence[Any] = (),
    ):
        super().__init__(mem_size=mem_size, batch_size_mem=batch_size_mem, storage_policy=storage_policy)
        self.collate_fn = collate_fn
        self.experiences = list(experiences)

    def before_training_exp(
        self, strategy: Any, num_workers: int = 0, shuffle: bool = True, drop_last: bool = False, **kwargs: Any
    ) -> None:
        if len(self.storage_policy.buffer) == 0:
            return
        strategy.dataloader = ReplayDataLoader(
            strategy.adapted_dataset,
            self.storage_policy.buffer,
            oversample_small_tasks=True,
            batch_size=self.batch_size or strategy.train_mb_size,
            batch_size_mem=self.batch_size_mem or strategy.train_mb_size,
            num_workers=num_workers,
            shuffle=shuffle,
            drop_last=drop_last,
            collate_fn=self.collate_fn,
        )

    def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        """Update the buffer (Avalanche's non-deprecated entry point, same effect as ``update``), samples tagged with their ids."""
        experience = strategy.experience
        tagged = DatasetExperience(dataset=with_sample_ids(experience), current_experience=experience.current_experience)
        self.storage_policy.post_adapt(strategy, tagged)

    def state_dict(self) -> dict[str, Any]:
        return {"buffer": buffer_state(self.storage_policy)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not self.experiences:
            raise ValueError("Seq2SeqReplayPlugin needs its training experiences to rebuild a saved buffer")
        tagged = [with_sample_ids(experience) for experience in self.experiences]
        everything = concat_datasets(tagged)
        offsets = dict(zip((e.current_experience for e in self.experiences), np.cumsum([0] + [len(d) for d in tagged]).tolist()))

        def samples(ids: list[int]) -> AvalancheDataset:
            return everything.subset([offsets[i >> 32] + (i & 0xFFFFFFFF) for i in ids])

        load_buffer_state(self.storage_policy, state["buffer"], samples)


def buffer_state(policy: ExemplarsBuffer) -> dict[str, Any]:
    """A storage policy's contents as sample ids plus its own bookkeeping (weights, groups, sizes)."""
    if isinstance(policy, ReservoirSamplingBuffer):
        return {"max_size": policy.max_size, "ids": sample_ids(policy.buffer), "weights": policy._buffer_weights.clone()}
    if isinstance(policy, BalancedExemplarsBuffer):
        seen = policy.seen_classes if isinstance(policy, ClassBalancedBuffer) else policy.seen_groups
        groups = [[int(key), buffer_state(group)] for key, group in policy.buffer_groups.items()]
        return {"max_size": policy.max_size, "seen": [int(key) for key in seen], "groups": groups}
    if isinstance(policy, _ParametricSingleBuffer):
        return {"max_size": policy.max_size, "ids": sample_ids(policy.buffer)}
    raise TypeError(f"cannot save a {type(policy).__name__} buffer")


def load_buffer_state(policy: ExemplarsBuffer, state: dict[str, Any], samples: Any) -> None:
    """Put ``buffer_state``'s contents back into ``policy``; ``samples(ids)`` gives the dataset of those ids."""
    policy.max_size = state["max_size"]
    if isinstance(policy, ReservoirSamplingBuffer):
        policy.buffer = samples(state["ids"])
        policy._buffer_weights = state["weights"].cpu().clone()  # Avalanche draws the new samples' weights on the CPU
    elif isinstance(policy, BalancedExemplarsBuffer):
        seen = policy.seen_classes if isinstance(policy, ClassBalancedBuffer) else policy.seen_groups
        seen.clear()
        seen.update(state["seen"])
        policy.buffer_groups = {}
        for key, group_state in state["groups"]:
            if isinstance(policy, ClassBalancedBuffer):
                group = ReservoirSamplingBuffer(group_state["max_size"])
            else:
                group = _ParametricSingleBuffer(group_state["max_size"], policy.selection_strategy)
            load_buffer_state(group, group_state, samples)
            policy.buffer_groups[key] = group
    else:
        policy.buffer = samples(state["ids"])


def replay_plugin(options: ReplayOptions, setup: MethodSetup) -> Seq2SeqReplayPlugin:
    """The rehearsal plugin every replay-based method (replay, AKD, SKD, COCONUT) starts from."""
    scenario = setup.scenario
    size = buffer_size(options.size, scenario.train_size)
    policy = make_storage_policy(options.policy, size, scenario.collate_fn)
    experiences = scenario.benchmark.train_stream
    return Seq2SeqReplayPlugin(size, scenario.collate_fn, policy, batch_size_mem=options.batch_size_mem, experiences=experiences)


def make_plugins(options: ReplayMethodOptions, setup: MethodSetup) -> list[Any]:
    return [replay_plugin(options.replay, setup)]


REPLAY = continual_method("replay", ReplayMethodOptions, make_plugins, "experience replay: reservoir, class-balanced or herding buffer")
