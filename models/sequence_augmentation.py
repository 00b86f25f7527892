"""Sequence augmentations of CL4SRec/MCLRec: crop, mask, reorder, on a padded batch at once.

Each training sequence gets two *different* operators drawn from {crop, mask, reorder}, so
the two views of one user disagree in a controlled way (docs/methods.md 2.2); sequences of
length <= 1 are left alone. The batch is RecBole's padded ``item_id_list`` (items
left-aligned, zeros on the right) and the views keep its width.

Every operator runs as tensor operations on the whole batch (no Python loop per sequence),
with the distribution of the per-sequence definitions:

- crop keeps a contiguous span of max(1, floor(eta * len)) items, its start uniform;
- mask replaces floor(mu * len) distinct positions, a uniform subset, with the mask item;
- reorder shuffles a contiguous span of floor(rho * len) items (start uniform, the span's
  order a uniform permutation).

The random numbers come from the module's own seeded ``torch.Generator``, on the batch's
device; its state is part of the model's ``state_dict`` (``get_extra_state``), so a run
resumed from a checkpoint draws the views an uninterrupted run would have drawn. A state saved
on another kind of device (a CUDA generator's state resumed on a CPU, or back) cannot be
replayed there: the generator is then seeded from that state's bytes, a stream that is still
fixed by the checkpoint but not the one the other device would have drawn.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

OPERATORS = ("crop", "mask", "reorder")


@dataclass
class AugmentedViews:
    """Two padded views of a batch, shaped like RecBole's ``item_id_list`` / ``item_length``."""

    seq1: torch.Tensor
    len1: torch.Tensor
    seq2: torch.Tensor
    len2: torch.Tensor


class SequenceAugmentation(nn.Module):
    """Two views per sequence by two different operators, drawn from a seeded generator."""

    def __init__(self, crop_ratio: float, mask_ratio: float, reorder_ratio: float, mask_id: int, seed: int = 0):
        super().__init__()
        self.crop_ratio = crop_ratio
        self.mask_ratio = mask_ratio
        self.reorder_ratio = reorder_ratio
        self.mask_id = mask_id
        self.seed = seed
        self._generator: torch.Generator | None = None
        self._pending_state: torch.Tensor | None = None

    # -- the generator and its state ------------------------------------------------------

    def generator(self, device: torch.device) -> torch.Generator:
        """The generator on ``device``: seeded on first use, or restored from a loaded state."""
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device)
            self._generator.manual_seed(self.seed)
            if self._pending_state is not None:
                restore_generator(self._generator, self._pending_state)
                self._pending_state = None
        return self._generator

    def get_extra_state(self) -> dict[str, Any]:
        state = self._pending_state if self._generator is None else self._generator.get_state()
        if state is None:  # never used: the seeded state
            state = torch.Generator().manual_seed(self.seed).get_state()
        return {"generator": state}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        if self._generator is not None:
            restore_generator(self._generator, state["generator"])
        else:
            self._pending_state = state["generator"]

    def __getstate__(self) -> dict[str, Any]:
        """Pickle (``torch.save`` of the module, ``copy.deepcopy``) with the generator's state, not the
        generator: torch 2.2 (the lower bound) cannot pickle a ``torch.Generator``."""
        state = self.__dict__.copy()
        if self._generator is not None:
            state["_pending_state"], state["_generator"] = self._generator.get_state(), None
        return state

    # -- the operators ----------------------------------------------------------------------

    def forward(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> AugmentedViews:
        """Augment a padded batch [B, W] with lengths [B]; both views keep the width W."""
        generator = self.generator(item_seq.device)
        first = torch.randint(0, 3, item_seq_len.shape, generator=generator, device=item_seq.device)
        second = (first + 1 + torch.randint(0, 2, item_seq_len.shape, generator=generator, device=item_seq.device)) % 3
        seq1, len1 = self.apply_operators(item_seq, item_seq_len, first, generator)
        seq2, len2 = self.apply_operators(item_seq, item_seq_len, second, generator)
        return AugmentedViews(seq1, len1, seq2, len2)

    def apply_operators(
        self, item_seq: torch.Tensor, lengths: torch.Tensor, operator: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Row i gets ``OPERATORS[operator[i]]``; rows of length <= 1 stay as they are."""
        cropped, cropped_len = self.crop(item_seq, lengths, generator)
        masked = self.mask(item_seq, lengths, generator)
        reordered = self.reorder(item_seq, lengths, generator)
        changed = lengths > 1
        pick = lambda index: (changed & (operator == index)).unsqueeze(1)  # noqa: E731
        views = torch.where(pick(0), cropped, torch.where(pick(1), masked, torch.where(pick(2), reordered, item_seq)))
        view_lengths = torch.where(changed & (operator == 0), cropped_len, lengths)
        return views, view_lengths

    def crop(self, item_seq: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """A contiguous span of max(1, floor(eta * len)) items, moved to the front."""
        span = torch.clamp(_floor_share(self.crop_ratio, lengths), min=1)
        start = _uniform_below(lengths - span + 1, generator)
        positions = torch.arange(item_seq.size(1), device=item_seq.device)
        taken = item_seq.gather(1, torch.clamp(start.unsqueeze(1) + positions, max=item_seq.size(1) - 1))
        return torch.where(positions < span.unsqueeze(1), taken, 0), span

    def mask(self, item_seq: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """floor(mu * len) distinct positions among the first len, a uniform subset, set to the mask item."""
        count = _floor_share(self.mask_ratio, lengths)
        positions = torch.arange(item_seq.size(1), device=item_seq.device)
        keys = torch.rand(item_seq.shape, generator=generator, device=item_seq.device)
        keys = torch.where(positions < lengths.unsqueeze(1), keys, 2.0)  # padding sorts last
        rank = torch.argsort(torch.argsort(keys, dim=1), dim=1)  # each position's place in a random order
        return torch.where(rank < count.unsqueeze(1), self.mask_id, item_seq)

    def reorder(self, item_seq: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A contiguous span of floor(rho * len) items in a uniformly random order."""
        span = _floor_share(self.reorder_ratio, lengths)
        start = _uniform_below(lengths - span + 1, generator)
        positions = torch.arange(item_seq.size(1), device=item_seq.device).expand_as(item_seq)
        inside = (positions >= start.unsqueeze(1)) & (positions < (start + span).unsqueeze(1))
        # sort keys: a position outside the span keeps its index; inside, start + a random share of the span
        noise = torch.rand(item_seq.shape, generator=generator, device=item_seq.device, dtype=torch.float64)
        keys = torch.where(inside, start.unsqueeze(1) + noise * span.unsqueeze(1), positions.to(torch.float64))
        return item_seq.gather(1, torch.argsort(keys, dim=1))


def _floor_share(ratio: float, lengths: torch.Tensor) -> torch.Tensor:
    """floor(ratio * len) computed in float64, as the per-sequence definition does."""
    return torch.floor(ratio * lengths.to(torch.float64)).to(lengths.dtype)


def _uniform_below(bound: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """An integer uniform in [0, bound) per entry (bound >= 1)."""
    draw = torch.rand(bound.shape, generator=generator, device=bound.device, dtype=torch.float64)
    return torch.clamp((draw * bound).to(bound.dtype), max=bound - 1)


def restore_generator(generator: torch.Generator, state: torch.Tensor) -> None:
    """Put ``state`` into ``generator``; a state of another device's generator (another size) seeds it instead.

    Generator states are CPU byte tensors, whatever device a checkpoint was loaded onto.
    """
    state = state.cpu()
    if state.numel() == generator.get_state().numel():
        generator.set_state(state)
    else:
        generator.manual_seed(zlib.crc32(state.numpy().tobytes()))
