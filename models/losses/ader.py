"""ADER's distillation on exemplars and its adaptive weight (Mi, Lin, Faltings; RecSys 2020).

The previous model's scores of each exemplar, kept when the exemplar was chosen, are the
teacher: the current model is trained to match their softmax over the items seen before
this period (cross-entropy of the two distributions, as the authors' code computes it). The
weight grows with the share of old items and of exemplars against the new data:
``λ_t = λ_base · sqrt(|I_{t-1}| / |I_t| · |E| / |D_t|)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def ader_distillation(student_logits: torch.Tensor, teacher_logits: torch.Tensor, old_items: torch.Tensor) -> torch.Tensor:
    """Mean over exemplars of ``-sum_i softmax(teacher)_i log softmax(student)_i`` over the old items (a bool mask [n_items])."""
    teacher = F.softmax(teacher_logits[:, old_items], dim=-1)
    return -(teacher * F.log_softmax(student_logits[:, old_items], dim=-1)).sum(dim=-1).mean()


def adaptive_weight(base: float, old_items: int, items: int, exemplars: int, samples: int) -> float:
    """``base · sqrt(old_items / items · exemplars / samples)``: ADER's λ_t for one period."""
    return base * math.sqrt((old_items / items) * (exemplars / samples))
