"""Sequence-level distillation (SKD): train the decoder on the teacher's own decoded sequence.

Kim and Rush's sequence-level KD: the teacher's greedy output replaces the gold target, so
the student learns to reproduce the old model's decisions rather than token posteriors.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def sequence_distillation_loss(logits: Tensor, teacher_tokens: Tensor, pad_id: int) -> Tensor:
    """Token cross-entropy of student logits [N, L, V] against teacher tokens [N, L] (pad ignored)."""
    if logits.size(0) == 0:
        return logits.sum() * 0.0
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), teacher_tokens.reshape(-1), ignore_index=pad_id)
