"""Decoupled contrastive learning (DCL; Yeh et al., ECCV 2022): InfoNCE without the positive in its denominator.

For an anchor with positive score s+ and negative scores s-_j (already divided by the
temperature, as ``pair_similarity`` returns them):

    DCL = -s+ + log sum_j exp(s-_j)        (InfoNCE: -s+ + log(exp(s+) + sum_j exp(s-_j)))

Removing the positive from the denominator removes the negative-positive coupling that makes
InfoNCE's gradient shrink when the positive is already easy, which matters with small batches.
The temperature means what it means for InfoNCE, so swapping the loss changes nothing else.
An anchor with no negative at all (a batch of one pair) contributes 0, as InfoNCE's log 1 does.
"""

from __future__ import annotations

import torch

from models.losses.info_nce import negatives_mask, pair_similarity


def dcl_from_scores(scores: torch.Tensor, partner: torch.Tensor, negatives: torch.Tensor | None = None) -> torch.Tensor:
    """Mean DCL over the anchors of ``pair_similarity``'s result; ``negatives`` [2B, 2B] narrows the default negatives."""
    size = scores.size(0)
    if negatives is None:
        negatives = negatives_mask(size, scores.device)
    positives = scores[torch.arange(size, device=scores.device), partner]
    log_denominator = scores.masked_fill(~negatives, float("-inf")).logsumexp(dim=1)
    has_negatives = negatives.any(dim=1)
    per_anchor = torch.where(has_negatives, log_denominator - positives, torch.zeros_like(positives))
    return per_anchor.mean()


def dcl(x: torch.Tensor, y: torch.Tensor, temperature: float = 1.0, negatives: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over the 2|B| anchors of -s+/tau + log sum over the 2(|B|-1) negatives of exp(s-/tau)."""
    return dcl_from_scores(*pair_similarity(x, y, temperature), negatives)
