"""MCLRec's losses, one file each: symmetric InfoNCE, the contrastive regularizer R, L_cl2."""

from models.losses.cl2 import cl2_loss, cl2_regularizer, cl2_terms
from models.losses.contrastive_regularizer import contrastive_regularizer, regularizer_from_scores
from models.losses.info_nce import info_nce, info_nce_from_scores, pair_scores, pair_similarity

__all__ = [
    "cl2_loss",
    "cl2_regularizer",
    "cl2_terms",
    "contrastive_regularizer",
    "info_nce",
    "info_nce_from_scores",
    "pair_scores",
    "pair_similarity",
    "regularizer_from_scores",
]
