"""DCL: decoupled contrastive learning (Yeh et al., ECCV 2022), the denominator of the contrastive losses.

InfoNCE's denominator holds the positive pair beside the negatives; DCL removes it, so the
positive's pull and the negatives' push no longer scale each other (the "negative-positive
coupling" that the paper shows slows learning most at small batch sizes, which rehearsal
batches are). For one positive:

    infonce: -s_pos/tau + log( exp(s_pos/tau) + sum_neg exp(s_neg/tau) )
    dcl:     -s_pos/tau + log( sum_neg exp(s_neg/tau) )

The temperature means the same in both, so a loss's ``variant`` swaps the denominator and
nothing else. An anchor with no negative in the batch has no DCL term (its denominator is
empty); it is left out of the mean, and a batch with no such anchor gives a zero loss that
still has a gradient path.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

VARIANTS = ("infonce", "dcl")
Variant = Literal["infonce", "dcl"]


def check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"contrastive loss variant must be one of {', '.join(VARIANTS)}, got '{variant}'")


def negatives_log_denominator(logits: Tensor, negative: Tensor) -> tuple[Tensor, Tensor]:
    """DCL's log-denominator per anchor (row): logsumexp of ``logits`` over the row's ``negative`` entries.

    Returns it with the mask of anchors that have at least one negative. The others get a finite
    placeholder that sends no gradient back, so that masking them out later keeps every gradient finite.
    """
    has_negative = negative.any(dim=1)
    masked = logits.masked_fill(~negative, float("-inf"))
    masked = torch.where(has_negative[:, None], masked, torch.zeros_like(masked))
    return torch.logsumexp(masked, dim=1), has_negative


def mean_over_anchors_with_negatives(per_anchor: Tensor, has_negative: Tensor) -> Tensor:
    """The mean over the anchors that have a negative; zero (with a gradient path) when none has one."""
    weights = has_negative.to(per_anchor.dtype)
    return (per_anchor * weights).sum() / weights.sum().clamp(min=1.0)
