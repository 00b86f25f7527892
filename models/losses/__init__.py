"""Contrastive losses, one file each: InfoNCE and DCL, the contrastive regularizer R, L_cl2.

``CONTRASTIVE_LOSSES`` names the InfoNCE family a model's ``cl_loss`` key chooses from:
``infonce`` (the papers') and ``dcl`` (decoupled: the positive out of the denominator). Each
takes ``pair_similarity``'s scores and partners, and an optional negatives mask.
"""

from collections.abc import Callable

import torch

from models.losses.cl2 import cl2_loss, cl2_regularizer, cl2_terms
from models.losses.contrastive_regularizer import contrastive_regularizer, regularizer_from_scores
from models.losses.dcl import dcl, dcl_from_scores
from models.losses.info_nce import info_nce, info_nce_from_scores, pair_scores, pair_similarity, same_group_negatives

ContrastiveLoss = Callable[..., torch.Tensor]
CONTRASTIVE_LOSSES: dict[str, ContrastiveLoss] = {"infonce": info_nce_from_scores, "dcl": dcl_from_scores}


def contrastive_loss(name: str) -> ContrastiveLoss:
    """The ``*_from_scores`` function of a named member of the InfoNCE family (``infonce``, ``dcl``)."""
    if name not in CONTRASTIVE_LOSSES:
        raise ValueError(f"cl_loss must be one of {', '.join(CONTRASTIVE_LOSSES)}, got {name!r}")
    return CONTRASTIVE_LOSSES[name]


__all__ = [
    "CONTRASTIVE_LOSSES",
    "cl2_loss",
    "cl2_regularizer",
    "cl2_terms",
    "contrastive_loss",
    "contrastive_regularizer",
    "dcl",
    "dcl_from_scores",
    "info_nce",
    "info_nce_from_scores",
    "pair_scores",
    "pair_similarity",
    "regularizer_from_scores",
    "same_group_negatives",
]
