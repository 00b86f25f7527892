"""Token-level logit distillation for a decoder (LwF on a seq2seq model).

LwF's KL between temperature-softened posteriors, applied at every non-pad decoder position.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def token_distillation_loss(student_logits: Tensor, teacher_logits: Tensor, valid: Tensor, temperature: float = 2.0) -> Tensor:
    """KL(teacher || student) per valid position [B, L], averaged over those positions."""
    if not bool(valid.any()):
        return student_logits.sum() * 0.0
    log_p = F.log_softmax(student_logits[valid] / temperature, dim=-1)
    q = F.softmax(teacher_logits[valid].detach() / temperature, dim=-1)
    return F.kl_div(log_p, q, reduction="batchmean")
