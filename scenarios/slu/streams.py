"""Class-incremental Avalanche benchmarks (train, valid and test streams) from an SLU corpus.

Experiences are built here rather than with ``class_incremental_benchmark(num_experiences=n)``,
which silently drops leftover classes (31 intents in 10 tasks loses one). Experience i of
every stream holds the same classes. A sample is ``(features [T, n_mels], intent, tokens, task)``
and ``collate`` pads a list of them into ``(x, y, x_lens, tokens, t)``: ``mbatch[0]`` is the
input, ``mbatch[1]`` the class and ``mbatch[-1]`` the task label, as Avalanche's templates expect.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
from avalanche.benchmarks.scenarios.supervised import with_classes_timeline
from avalanche.benchmarks.scenarios.task_aware import with_task_labels
from avalanche.benchmarks.utils import ConstantSequence, DataAttribute, TaskAwareSupervisedClassificationDataset
from torch.nn.utils.rnn import pad_sequence

from scenarios.slu.corpus import SPLITS, Corpus
from scenarios.slu.features import FeatureSet, SplitFeatures
from scenarios.slu.tokenizer import PAD, SPECIALS, Tokenizer

PAD_ID = SPECIALS.index(PAD)


@dataclass
class SLUBenchmark:
    """A built SLU scenario: the Avalanche benchmark plus what a model and a method need to use it."""

    benchmark: Any
    tokenizer: Tokenizer
    classes: list[str]  # label index -> class name
    class_order: list[str]
    classes_per_exp: list[int]
    n_mels: int
    collate_fn: Callable[[Sequence[tuple]], tuple[torch.Tensor, ...]]
    train_size: int
    skipped_audio: int
    corpus_dir: Path
    feature_cache_dir: Path | None = None
    features_from_cache: bool = False
    skipped_files: list[str] = field(default_factory=list)
    """Audio files left out with ``skip_bad_audio: true`` (sorted paths); ``skipped_audio`` is their count."""
    skipped_reasons: dict[str, str] = field(default_factory=dict)
    """Why each skipped file was left out (path -> one-line reason), for a run artifact."""

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def experience_classes(self) -> list[list[str]]:
        """Class names of each experience, in arrival order."""
        bounds = [sum(self.classes_per_exp[:i]) for i in range(len(self.classes_per_exp) + 1)]
        return [self.class_order[a:b] for a, b in zip(bounds, bounds[1:])]


class UtteranceDataset(torch.utils.data.Dataset):
    """Cached features, class index and token ids of one split; task label 0 (class-incremental)."""

    def __init__(self, features: SplitFeatures, labels: Sequence[int], tokens: Sequence[Sequence[int]]) -> None:
        if not len(features) == len(labels) == len(tokens):
            raise ValueError("features, labels and tokens must have one entry per utterance")
        self.features = features
        self.labels = list(labels)
        self.tokens = [torch.tensor(t, dtype=torch.long) for t in tokens]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, torch.Tensor, int]:
        return self.features.get(index), self.labels[index], self.tokens[index], 0


def collate(samples: Sequence[tuple]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pad samples into (x [B, Tmax, n_mels] zeros, y [B], x_lens [B], tokens [B, Lmax] pad 0, t [B]).

    Features come in torch's default dtype: float32, or float64 where a caller made that the
    default (the pinned tests' float64 runs, ``tests/test_continual_pinned.py``).
    """
    feats = [torch.as_tensor(s[0], dtype=torch.get_default_dtype()) for s in samples]
    x = pad_sequence(feats, batch_first=True, padding_value=0.0)
    y = torch.tensor([int(s[1]) for s in samples], dtype=torch.long)
    x_lens = torch.tensor([f.shape[0] for f in feats], dtype=torch.long)
    tokens = pad_sequence([torch.as_tensor(s[2], dtype=torch.long) for s in samples], batch_first=True, padding_value=PAD_ID)
    t = torch.tensor([int(s[-1]) for s in samples], dtype=torch.long)
    return x, y, x_lens, tokens, t


def make_dataset(
    features: SplitFeatures, labels: Sequence[int], tokens: Sequence[Sequence[int]]
) -> TaskAwareSupervisedClassificationDataset:
    """An Avalanche classification dataset with ``targets``, task labels 0 and ``collate`` as its collate_fn."""
    base = UtteranceDataset(features, labels, tokens)
    return TaskAwareSupervisedClassificationDataset(
        [base],
        data_attributes=[
            DataAttribute(list(labels), "targets"),
            DataAttribute(ConstantSequence(0, len(labels)), "targets_task_labels"),
        ],
        collate_fn=collate,
    )


def build_streams(
    corpus: Corpus, features: FeatureSet, classes: list[str], order: list[str], sizes: list[int], tokenizer: Tokenizer
) -> tuple[Any, int]:
    """The Avalanche benchmark with ``train_stream``, ``valid_stream`` and ``test_stream``; also the train size."""
    index = {name: i for i, name in enumerate(classes)}
    bounds = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
    groups = [[index[name] for name in order[a:b]] for a, b in zip(bounds, bounds[1:])]
    streams: dict[str, list] = {}
    for split in SPLITS:
        split_features = features.splits[split]
        utterances = [corpus.splits[split][int(k)] for k in split_features.kept]
        labels = [index[u.label] for u in utterances]
        tokens = [tokenizer.encode(u.label, u.transcript) for u in utterances]
        dataset = make_dataset(split_features, labels, tokens)
        members = [set(group) for group in groups]
        streams[split] = [dataset.subset([i for i, y in enumerate(labels) if y in m]) for m in members]
    benchmark = with_classes_timeline(with_task_labels(benchmark_from_datasets(**streams)))
    return benchmark, len(features.splits["train"])
