"""MCLRec's contrastive regularizer R: keeps the augmenters from collapsing the score margin.

For a pair of view batches (x, y), every anchor i of the 2|B| views has a positive score
s+_i and 2(|B|-1) negative scores s-_ij (the same scores as InfoNCE, dot / temperature).
With o_min = min(s+, max_j s-) and o_max = max(s+, max_j s-):

    R(x, y) = mean_i relu(s+_i - o_min_i) + mean_ij relu(o_max_i - s-_ij)

``per_anchor=True`` takes s+ and max_j s- per anchor, as the authors' code that produced the
published figures does; ``per_anchor=False`` is the paper's batch-wide form: one
o_min = min(min_i s+_i, max_ij s-_ij) and one o_max = max(min_i s+_i, max_ij s-_ij) for
the whole batch (min over the positives, like the code's min over its positive column).
"""

from __future__ import annotations

import torch

from models.losses.info_nce import negatives_mask, pair_similarity


def regularizer_from_scores(scores: torch.Tensor, partner: torch.Tensor, per_anchor: bool = True) -> torch.Tensor:
    """R from ``pair_similarity``'s result (shared with InfoNCE in L_cl2)."""
    size = scores.size(0)
    if size <= 2:  # a batch of one pair has no negatives: nothing to regularize
        return scores.sum() * 0.0
    positives = scores[torch.arange(size, device=scores.device), partner]
    negative = negatives_mask(size, scores.device)
    highest = scores.masked_fill(~negative, float("-inf")).max(dim=1).values
    if per_anchor:
        lowest_positive, highest_negative = positives, highest
    else:
        lowest_positive, highest_negative = positives.min().expand_as(positives), highest.max().expand_as(positives)
    o_min = torch.minimum(lowest_positive, highest_negative)
    o_max = torch.maximum(lowest_positive, highest_negative)
    positive_term = torch.relu(positives - o_min).mean()
    negative_term = (torch.relu(o_max.unsqueeze(1) - scores) * negative).sum() / (size * (size - 2))
    return positive_term + negative_term


def contrastive_regularizer(x: torch.Tensor, y: torch.Tensor, temperature: float = 1.0, per_anchor: bool = True) -> torch.Tensor:
    """R(x, y) as defined in docs/methods.md 2.3; per anchor by default, batch-wide on request."""
    return regularizer_from_scores(*pair_similarity(x, y, temperature), per_anchor)
