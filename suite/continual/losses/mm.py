"""MM: supervised, symmetric audio-text contrastive loss on the new samples (COCONUT).

``u_i = normalize(g_a(a_i))`` (pooled audio), ``v_j = normalize(g_t(e_j))`` (mean decoder
token embedding of the transcript). It aligns the encoder's audio space with the decoder's
text space for the classes being learned, which the paper credits for part of the gain:

    L_mm = 1/2 (SupCon(u -> v) + SupCon(v -> u))
    SupCon(u -> v) = mean_i -1/|P(i)| sum_{p: y_p = y_i} log( exp(u_i.v_p/tau) / sum_j exp(u_i.v_j/tau) )
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def supcon_cross_loss(anchors: Tensor, candidates: Tensor, labels: Tensor, temperature: float = 0.1) -> Tensor:
    """SupCon from one view to another: every candidate with the anchor's label is a positive.

    Both inputs are [N, D] and L2-normalized here; the denominator runs over all N candidates.
    """
    a = F.normalize(anchors, dim=-1)
    c = F.normalize(candidates, dim=-1)
    logits = a @ c.T / temperature
    log_prob = logits - logits.logsumexp(dim=1, keepdim=True)
    positive = (labels[:, None] == labels[None, :]).to(log_prob.dtype)
    return (-(log_prob * positive).sum(1) / positive.sum(1)).mean()


def mm_loss(audio: Tensor, text: Tensor, labels: Tensor, temperature: float = 0.1) -> Tensor:
    """Symmetric audio-text SupCon over the new samples; zero when there are none."""
    if audio.size(0) == 0:
        return audio.sum() * 0.0
    return 0.5 * (supcon_cross_loss(audio, text, labels, temperature) + supcon_cross_loss(text, audio, labels, temperature))
