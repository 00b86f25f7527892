"""A tiny synthetic class-incremental SLU benchmark, for tests and throughput benchmarks.

It has the shape of the SLU scenarios' ``SLUBenchmark`` (same sample format, same
``collate_fn`` contract, an Avalanche class-incremental benchmark with train/valid/test
streams) but its "audio" is random log-mel-like noise around one prototype per class, so it
builds in milliseconds and any method can learn it. Not a substitute for the real corpus.
Batches are padded by the SLU scenarios' own ``collate``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import torch
from avalanche.benchmarks.scenarios.supervised import class_incremental_benchmark
from avalanche.benchmarks.utils.classification_dataset import _make_taskaware_classification_dataset
from torch import Tensor
from torch.utils.data import Dataset

from scenarios.slu.streams import collate
from scenarios.slu.tokenizer import Tokenizer

WORDS = (
    "turn",
    "on",
    "off",
    "the",
    "lights",
    "music",
    "heat",
    "kitchen",
    "bedroom",
    "up",
    "down",
    "lamp",
    "volume",
    "open",
    "close",
    "door",
)


class _Samples(Dataset):
    def __init__(self, items: list[tuple[Tensor, int, Tensor, int]]):
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[Tensor, int, Tensor, int]:
        return self.items[index]


@dataclass
class SyntheticSLU:
    """Same fields as the SLU scenarios' ``SLUBenchmark``."""

    benchmark: Any
    tokenizer: Tokenizer
    classes: list[str]
    class_order: list[int]
    classes_per_exp: list[int]
    n_mels: int
    collate_fn: Any = collate
    train_size: int = 0
    transcripts: dict[int, list[str]] = field(default_factory=dict)
    fingerprint: str = ""
    """Digest of the generator's arguments: the same fingerprint means the same data."""


def build_synthetic_slu(
    num_classes: int = 6,
    num_experiences: int = 3,
    per_class: tuple[int, int, int] = (24, 4, 8),
    n_mels: int = 20,
    frames: tuple[int, int] = (40, 64),
    noise: float = 1.0,
    seed: int = 0,
) -> SyntheticSLU:
    """Build the benchmark; ``per_class`` = (train, valid, test) utterances per class."""
    generator = torch.Generator().manual_seed(seed)
    classes = [f"class{c}" for c in range(num_classes)]
    transcripts = {c: _phrasings(c, generator) for c in range(num_classes)}
    tokenizer = Tokenizer.build(classes, [t for phrases in transcripts.values() for t in phrases])
    prototypes = torch.randn(num_classes, 4, n_mels, generator=generator) * 2.0
    splits = {}
    for split, count in zip(("train", "valid", "test"), per_class):
        items = [
            _sample(c, prototypes[c], transcripts[c], classes[c], tokenizer, frames, noise, generator)
            for c in range(num_classes)
            for _ in range(count)
        ]
        targets = [item[1] for item in items]
        splits[split] = _make_taskaware_classification_dataset(_Samples(items), targets=targets, task_labels=0, collate_fn=collate)
    per_exp = _split_counts(num_classes, num_experiences)
    order = torch.randperm(num_classes, generator=generator).tolist()
    benchmark = class_incremental_benchmark(splits, class_order=order, num_classes_per_exp=per_exp)
    arguments = (num_classes, num_experiences, tuple(per_class), n_mels, tuple(frames), noise, seed)
    fingerprint = hashlib.sha256(repr(arguments).encode()).hexdigest()[:24]
    return SyntheticSLU(benchmark, tokenizer, classes, order, per_exp, n_mels, collate, len(splits["train"]), transcripts, fingerprint)


def _split_counts(num_classes: int, num_experiences: int) -> list[int]:
    base, extra = divmod(num_classes, num_experiences)
    return [base + (1 if i < extra else 0) for i in range(num_experiences)]


def _phrasings(c: int, generator: torch.Generator) -> list[str]:
    picks = torch.randint(0, len(WORDS), (2, 3), generator=generator).tolist()
    return [" ".join(WORDS[w] for w in row) + f" item{c}" for row in picks]


def _sample(
    c: int,
    prototype: Tensor,
    phrases: list[str],
    label: str,
    tokenizer: Tokenizer,
    frames: tuple[int, int],
    noise: float,
    generator: torch.Generator,
) -> tuple[Tensor, int, Tensor, int]:
    length = int(torch.randint(frames[0], frames[1] + 1, (1,), generator=generator))
    pattern = prototype.repeat_interleave((length + 3) // 4, dim=0)[:length]
    features = pattern + noise * torch.randn(length, prototype.size(1), generator=generator)
    phrase = phrases[int(torch.randint(0, len(phrases), (1,), generator=generator))]
    return features, c, torch.tensor(tokenizer.encode(label, phrase), dtype=torch.long), 0
