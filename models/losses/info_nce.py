"""Symmetric InfoNCE with in-batch negatives (NT-Xent), the L_con of CL4SRec and MCLRec.

For a batch of pairs (x_i, y_i) the 2|B| views are stacked; each view is an anchor whose
positive is its partner and whose negatives are the other 2(|B|-1) views (itself and its
partner excluded). Similarity is the dot product divided by the temperature.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pair_scores(x: torch.Tensor, y: torch.Tensor, temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Positive scores [2B] and negative scores [2B, 2B-2] of every anchor of the pair (x, y)."""
    batch = x.size(0)
    views = torch.cat([x, y], dim=0)
    sim = views @ views.T / temperature
    partner = torch.cat([torch.arange(batch, 2 * batch), torch.arange(0, batch)]).to(x.device)
    rows = torch.arange(2 * batch, device=x.device)
    positives = sim[rows, partner]
    keep = torch.ones_like(sim, dtype=torch.bool)
    keep[rows, rows] = False
    keep[rows, partner] = False
    negatives = sim[keep].view(2 * batch, 2 * batch - 2)
    return positives, negatives


def info_nce(x: torch.Tensor, y: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Mean over the 2|B| anchors of -log softmax(positive | positive and 2(|B|-1) negatives)."""
    positives, negatives = pair_scores(x, y, temperature)
    logits = torch.cat([positives.unsqueeze(1), negatives], dim=1)
    labels = torch.zeros(logits.size(0), dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits, labels)
