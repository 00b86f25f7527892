"""L_cl2, MCLRec's meta contrastive loss, and R summed over the same three pairs.

The augmenters' views z1 = w1(h1), z2 = w2(h2) are contrasted with each other and across
with the encoder's views: L_cl2 = L_con(z1, z2) + L_con(h1, z2) + L_con(h2, z1). The
authors' code sums R over the same three pairs; ``cl2_terms`` computes each pair's score
matrix once for both. L_con is InfoNCE unless the model's ``cl_loss`` chooses DCL.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from models.losses.contrastive_regularizer import regularizer_from_scores
from models.losses.info_nce import info_nce_from_scores, pair_similarity


def cl2_terms(
    h1: torch.Tensor,
    h2: torch.Tensor,
    z1: torch.Tensor,
    z2: torch.Tensor,
    temperature: float = 1.0,
    per_anchor: bool = True,
    with_regularizer: bool = True,
    loss: Callable[..., torch.Tensor] = info_nce_from_scores,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(L_cl2, R summed over its three pairs, or None without the regularizer); ``loss``: InfoNCE or DCL ``*_from_scores``."""
    pairs = [pair_similarity(a, b, temperature) for a, b in ((z1, z2), (h1, z2), (h2, z1))]
    cl2 = sum(loss(*pair) for pair in pairs)
    regularizer = sum(regularizer_from_scores(*pair, per_anchor) for pair in pairs) if with_regularizer else None
    return cl2, regularizer


def cl2_loss(h1: torch.Tensor, h2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """L_cl2 = L_con(z1, z2) + L_con(h1, z2) + L_con(h2, z1)."""
    return cl2_terms(h1, h2, z1, z2, temperature, with_regularizer=False)[0]


def cl2_regularizer(
    h1: torch.Tensor, h2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor, temperature: float = 1.0, per_anchor: bool = True
) -> torch.Tensor:
    """R summed over the three pairs of L_cl2, as the authors' code does (their 0.1 is a weight in L0 and L1)."""
    return cl2_terms(h1, h2, z1, z2, temperature, per_anchor)[1]
