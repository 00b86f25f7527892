"""MCLRec's losses, one file each: symmetric InfoNCE, the contrastive regularizer R, L_cl2."""

from models.losses.cl2 import cl2_loss, cl2_regularizer
from models.losses.contrastive_regularizer import contrastive_regularizer
from models.losses.info_nce import info_nce, pair_scores

__all__ = ["cl2_loss", "cl2_regularizer", "contrastive_regularizer", "info_nce", "pair_scores"]
