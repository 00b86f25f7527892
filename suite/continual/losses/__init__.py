"""Losses of the continual SLU methods, one file each, named after the loss."""

from suite.continual.losses.dcl import VARIANTS
from suite.continual.losses.feature_kd import feature_distillation_loss
from suite.continual.losses.mm import mm_loss, supcon_cross_loss
from suite.continual.losses.nspt import nspt_loss
from suite.continual.losses.sequence_kd import sequence_distillation_loss
from suite.continual.losses.token_kd import token_distillation_loss

__all__ = [
    "VARIANTS",
    "feature_distillation_loss",
    "mm_loss",
    "nspt_loss",
    "sequence_distillation_loss",
    "supcon_cross_loss",
    "token_distillation_loss",
]
