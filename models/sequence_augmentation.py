"""Sequence augmentations of CL4SRec/MCLRec: crop, mask, reorder.

Each training sequence gets two *different* operators drawn from {crop, mask, reorder},
so the two views of one user disagree in a controlled way (METHODS.md section 2). The
operators work on plain lists of item ids; ``SequenceAugmenter`` applies them to a padded
RecBole batch (items left-aligned, zeros on the right) and owns a seeded generator, so a run
is reproducible from its seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

OPERATORS = ("crop", "mask", "reorder")


def crop(items: list[int], ratio: float, rng: np.random.Generator) -> list[int]:
    """Keep a random contiguous span of floor(ratio * len) items (at least one)."""
    span = max(1, int(np.floor(ratio * len(items))))
    start = int(rng.integers(0, len(items) - span + 1))
    return items[start : start + span]


def mask(items: list[int], ratio: float, mask_id: int, rng: np.random.Generator) -> list[int]:
    """Replace floor(ratio * len) random positions with the mask item."""
    count = int(np.floor(ratio * len(items)))
    masked = list(items)
    for position in rng.choice(len(items), size=count, replace=False):
        masked[int(position)] = mask_id
    return masked


def reorder(items: list[int], ratio: float, rng: np.random.Generator) -> list[int]:
    """Shuffle a random contiguous span of floor(ratio * len) items."""
    span = int(np.floor(ratio * len(items)))
    if span < 2:
        return list(items)
    start = int(rng.integers(0, len(items) - span + 1))
    shuffled = list(items[start : start + span])
    rng.shuffle(shuffled)
    return items[:start] + shuffled + items[start + span :]


@dataclass
class AugmentedViews:
    """Two padded views of a batch, shaped like RecBole's ``item_id_list`` / ``item_length``."""

    seq1: torch.Tensor
    len1: torch.Tensor
    seq2: torch.Tensor
    len2: torch.Tensor


class SequenceAugmenter:
    """Draws two different operators per sequence and applies them; seeded for reproducibility."""

    def __init__(self, crop_ratio: float, mask_ratio: float, reorder_ratio: float, mask_id: int, seed: int = 0):
        self.crop_ratio = crop_ratio
        self.mask_ratio = mask_ratio
        self.reorder_ratio = reorder_ratio
        self.mask_id = mask_id
        self.rng = np.random.default_rng(seed)

    def apply(self, operator: str, items: list[int]) -> list[int]:
        if operator == "crop":
            return crop(items, self.crop_ratio, self.rng)
        if operator == "mask":
            return mask(items, self.mask_ratio, self.mask_id, self.rng)
        if operator == "reorder":
            return reorder(items, self.reorder_ratio, self.rng)
        raise ValueError(f"unknown augmentation operator '{operator}'; known: {', '.join(OPERATORS)}")

    def two_views_of(self, items: list[int]) -> tuple[list[int], list[int]]:
        """Two views by two different operators; sequences of length <= 1 are left alone."""
        if len(items) <= 1:
            return list(items), list(items)
        first, second = self.rng.choice(len(OPERATORS), size=2, replace=False)
        return self.apply(OPERATORS[first], items), self.apply(OPERATORS[second], items)

    def __call__(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> AugmentedViews:
        """Augment a padded batch; the views keep the batch's padded width."""
        width = item_seq.size(1)
        rows = item_seq.tolist()
        lengths = item_seq_len.tolist()
        views: tuple[list[list[int]], list[list[int]]] = ([], [])
        for row, length in zip(rows, lengths):
            for target, view in zip(views, self.two_views_of(row[:length])):
                target.append(view)
        seq1, len1 = _pad(views[0], width, item_seq.device)
        seq2, len2 = _pad(views[1], width, item_seq.device)
        return AugmentedViews(seq1, len1, seq2, len2)


def _pad(sequences: list[list[int]], width: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    padded = np.zeros((len(sequences), width), dtype=np.int64)
    for row, items in enumerate(sequences):
        padded[row, : len(items)] = items
    lengths = np.array([len(items) for items in sequences], dtype=np.int64)
    return torch.from_numpy(padded).to(device), torch.from_numpy(lengths).to(device)
