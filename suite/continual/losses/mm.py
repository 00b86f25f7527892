"""MM: supervised, symmetric audio-text contrastive loss on the new samples (COCONUT).

``u_i = normalize(g_a(a_i))`` (pooled audio), ``v_j = normalize(g_t(e_j))`` (mean decoder
token embedding of the transcript). It aligns the encoder's audio space with the decoder's
text space for the classes being learned, which the paper credits for part of the gain:

    L_mm = 1/2 (SupCon(u -> v) + SupCon(v -> u))
    SupCon(u -> v) = mean_i -1/|P(i)| sum_{p: y_p = y_i} log( exp(u_i.v_p/tau) / sum_j exp(u_i.v_j/tau) )

``variant="dcl"`` (decoupled contrastive learning, ``dcl.py``) removes the positives from the
denominator, which then runs over the other classes' candidates only:

    SupCon_dcl(u -> v) = mean_i -1/|P(i)| sum_{p: y_p = y_i} log( exp(u_i.v_p/tau) / sum_{n: y_n != y_i} exp(u_i.v_n/tau) )

averaged over the anchors whose class is not the only one among the new samples.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from suite.continual.losses.dcl import Variant, check_variant, mean_over_anchors_with_negatives, negatives_log_denominator


def supcon_cross_loss(
    anchors: Tensor, candidates: Tensor, labels: Tensor, temperature: float = 0.1, variant: Variant = "infonce"
) -> Tensor:
    """SupCon from one view to another: every candidate with the anchor's label is a positive.

    Both inputs are [N, D] and L2-normalized here; the denominator runs over all N candidates
    (``infonce``) or over those of another label (``dcl``).
    """
    check_variant(variant)
    a = F.normalize(anchors, dim=-1)
    c = F.normalize(candidates, dim=-1)
    logits = a @ c.T / temperature
    same = labels[:, None] == labels[None, :]
    if variant == "dcl":
        log_denominator, has_negative = negatives_log_denominator(logits, ~same)
        log_prob = logits - log_denominator[:, None]
        per_anchor = -(log_prob * same).sum(1) / same.sum(1)
        return mean_over_anchors_with_negatives(per_anchor, has_negative)
    log_prob = logits - logits.logsumexp(dim=1, keepdim=True)
    positive = same.to(log_prob.dtype)
    return (-(log_prob * positive).sum(1) / positive.sum(1)).mean()


def mm_loss(audio: Tensor, text: Tensor, labels: Tensor, temperature: float = 0.1, variant: Variant = "infonce") -> Tensor:
    """Symmetric audio-text SupCon over the new samples (``variant``: ``infonce`` or ``dcl``); zero when there are none."""
    if audio.size(0) == 0:
        return audio.sum() * 0.0
    forward = supcon_cross_loss(audio, text, labels, temperature, variant)
    return 0.5 * (forward + supcon_cross_loss(text, audio, labels, temperature, variant))
