"""MCLRec's losses, one file each: symmetric InfoNCE, the contrastive regularizer R, L_cl2."""

from suite.sequential.losses.cl2 import cl2_loss, cl2_regularizer
from suite.sequential.losses.contrastive_regularizer import contrastive_regularizer
from suite.sequential.losses.info_nce import info_nce, pair_scores

__all__ = ["cl2_loss", "cl2_regularizer", "contrastive_regularizer", "info_nce", "pair_scores"]
