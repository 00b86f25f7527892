"""NSPT: negative-student, positive-teacher supervised contrastive loss (COCONUT, docs/methods.md 1.4).

Anchors are the rehearsal samples R of a batch, embedded by the student. Their positives are
the teacher's embeddings of the rehearsal samples with the same label (the anchor's own
teacher view included), so old classes keep the geometry they had at the end of the previous
experience; their negatives are the student's embeddings of every batch sample with another
label, so new classes are pushed away from old ones:

    L = mean_{i in R} -1/|P(i)| sum_{p in P(i)} log( exp(s_i.t_p/tau) /
            ( sum_{p' in P(i)} exp(s_i.t_p'/tau) + sum_{n in B, y_n != y_i} exp(s_i.s_n/tau) ) )

``variant="dcl"`` (decoupled contrastive learning, ``dcl.py``) is the same SupCon form with the
positives removed from the denominator, which then holds the student negatives only:

    L = mean_{i in R} -1/|P(i)| sum_{p in P(i)} log( exp(s_i.t_p/tau) / sum_{n in B, y_n != y_i} exp(s_i.s_n/tau) )

averaged over the anchors that have a negative in the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from suite.continual.losses.dcl import Variant, check_variant, mean_over_anchors_with_negatives, negatives_log_denominator


def nspt_loss(
    student: Tensor, teacher: Tensor, labels: Tensor, rehearsal: Tensor, temperature: float = 0.1, variant: Variant = "infonce"
) -> Tensor:
    """NSPT loss.

    :param student: [B, D] student projections of the whole batch (normalized here).
    :param teacher: [|R|, D] teacher projections of the rehearsal samples, in batch order.
    :param labels: [B] class labels of the batch.
    :param rehearsal: [B] boolean mask of the rehearsal samples R.
    :param temperature: tau.
    :param variant: ``infonce`` (the paper's: positives and negatives in the denominator) or ``dcl`` (negatives only).
    """
    check_variant(variant)
    if not bool(rehearsal.any()):
        return student.sum() * 0.0
    z_s = F.normalize(student, dim=-1)
    z_t = F.normalize(teacher, dim=-1)
    anchors, anchor_labels = z_s[rehearsal], labels[rehearsal]
    positive = anchor_labels[:, None] == anchor_labels[None, :]  # [R, R], P(i) among R
    negative = anchor_labels[:, None] != labels[None, :]  # [R, B]
    pos_logits = anchors @ z_t.T / temperature
    neg_logits = anchors @ z_s.T / temperature
    if variant == "dcl":
        log_denominator, has_negative = negatives_log_denominator(neg_logits, negative)
        log_prob = pos_logits - log_denominator[:, None]
        per_anchor = -(log_prob * positive).sum(1) / positive.sum(1)
        return mean_over_anchors_with_negatives(per_anchor, has_negative)
    pos_part = torch.logsumexp(pos_logits.masked_fill(~positive, float("-inf")), dim=1)
    neg_part = torch.logsumexp(neg_logits.masked_fill(~negative, float("-inf")), dim=1)
    log_denominator = torch.logaddexp(pos_part, neg_part)
    log_prob = pos_logits - log_denominator[:, None]
    per_anchor = -(log_prob * positive).sum(1) / positive.sum(1)
    return per_anchor.mean()
