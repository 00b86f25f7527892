"""L_cl2, MCLRec's meta contrastive loss, and R summed over the same three pairs.

The augmenters' views z1 = w1(h1), z2 = w2(h2) are contrasted with each other and across
with the encoder's views: L_cl2 = L_con(z1, z2) + L_con(h1, z2) + L_con(h2, z1).
"""

from __future__ import annotations

import torch

from models.losses.contrastive_regularizer import contrastive_regularizer
from models.losses.info_nce import info_nce


def cl2_loss(h1: torch.Tensor, h2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """L_cl2 = L_con(z1, z2) + L_con(h1, z2) + L_con(h2, z1)."""
    return info_nce(z1, z2, temperature) + info_nce(h1, z2, temperature) + info_nce(h2, z1, temperature)


def cl2_regularizer(
    h1: torch.Tensor, h2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor, temperature: float = 1.0, per_anchor: bool = True
) -> torch.Tensor:
    """R summed over the three pairs of L_cl2, as the authors' code does (their 0.1 lives in gamma)."""
    return (
        contrastive_regularizer(z1, z2, temperature, per_anchor)
        + contrastive_regularizer(h1, z2, temperature, per_anchor)
        + contrastive_regularizer(h2, z1, temperature, per_anchor)
    )
