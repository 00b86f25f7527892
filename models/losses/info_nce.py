"""Symmetric InfoNCE with in-batch negatives (NT-Xent), the L_con of CL4SRec and MCLRec.

For a batch of pairs (x_i, y_i) the 2|B| views are stacked; each view is an anchor whose
positive is its partner and whose negatives are the other 2(|B|-1) views (itself and its
partner excluded). Similarity is the dot product divided by the temperature.

The loss is a cross-entropy over each anchor's row of the similarity matrix with the anchor
itself masked out: the row then holds exactly the positive and the 2(|B|-1) negatives, so
no gather of the negatives is needed (``pair_scores`` spells them out for readers and tests).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pair_similarity(x: torch.Tensor, y: torch.Tensor, temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores of every view against every view [2B, 2B] (dot / temperature), and each view's partner [2B]."""
    batch = x.size(0)
    views = torch.cat([x, y], dim=0)
    scores = views @ views.T / temperature
    partner = torch.arange(2 * batch, device=x.device).roll(batch)
    return scores, partner


def negatives_mask(size: int, device: torch.device) -> torch.Tensor:
    """True where column j is a negative of anchor i: neither the anchor itself nor its partner."""
    itself = torch.eye(size, dtype=torch.bool, device=device)
    return ~(itself | itself.roll(size // 2, dims=1))


def pair_scores(x: torch.Tensor, y: torch.Tensor, temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Positive scores [2B] and negative scores [2B, 2B-2] of every anchor of the pair (x, y)."""
    scores, partner = pair_similarity(x, y, temperature)
    rows = torch.arange(scores.size(0), device=scores.device)
    negatives = scores[negatives_mask(scores.size(0), scores.device)].view(scores.size(0), -1)
    return scores[rows, partner], negatives


def info_nce_from_scores(scores: torch.Tensor, partner: torch.Tensor, negatives: torch.Tensor | None = None) -> torch.Tensor:
    """InfoNCE from ``pair_similarity``'s result (shared with the regularizer R in L_cl2).

    ``negatives`` [2B, 2B] (default ``negatives_mask``) narrows which columns are negatives,
    e.g. DuoRec drops the samples that share the anchor's target; the partner always stays.
    """
    if negatives is None:
        kept = ~torch.eye(scores.size(0), dtype=torch.bool, device=scores.device)
    else:
        kept = negatives.clone()
        kept[torch.arange(scores.size(0), device=scores.device), partner] = True
    return F.cross_entropy(scores.masked_fill(~kept, float("-inf")), partner)


def info_nce(x: torch.Tensor, y: torch.Tensor, temperature: float = 1.0, negatives: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over the 2|B| anchors of -log softmax(positive | positive and 2(|B|-1) negatives)."""
    return info_nce_from_scores(*pair_similarity(x, y, temperature), negatives)


def same_group_negatives(groups: torch.Tensor) -> torch.Tensor:
    """Negatives [2B, 2B] of a pair of view batches whose samples i, j with equal ``groups`` [B] are no negatives
    of each other (DuoRec: samples with the same target item); the anchor and its partner are excluded as always."""
    same = groups.unsqueeze(0) == groups.unsqueeze(1)
    return ~same.repeat(2, 2)
