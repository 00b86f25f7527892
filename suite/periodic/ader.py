"""ADER: exemplar replay with adaptive distillation (Mi, Lin, Faltings; RecSys 2020), as the authors' code does it.

After each period ``size`` exemplars are chosen from the period's training samples and the
previous exemplars: each target item gets a share drawn in proportion to its frequency there
(a seeded multinomial), filled by iCaRL's herding on the model's sequence representation of
that item's samples; the model's scores of each exemplar over all items are kept. In the next
period every batch of new samples carries an equal share of the exemplars, and the loss is
the model's own loss on the new samples plus ``λ_t`` times the cross-entropy between the kept
scores' softmax and the model's over the items seen before the period
(``models.losses.ader``), with ``λ_t = λ_base · sqrt(|I_{t-1}| / |I_t| · |E| / |D_t|)``
(``adaptive: false`` keeps ``λ_base``). The authors keep 30,000 exemplars on their datasets;
the default here is sized for ml-100k.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from pydantic import Field
from recbole.data.interaction import Interaction

from models.losses.ader import adaptive_weight, ader_distillation
from suite.api import Options
from suite.periodic.entries import periodic_method
from suite.periodic.method import BatchList, PeriodData, PeriodMethod, shuffled_chunks
from suite.periodic.replay import herding

ROW = "ader_exemplar_row"


class ADEROptions(Options):
    size: int = Field(500, ge=1, description="exemplars kept across periods")
    weight: float = Field(0.8, ge=0, description="λ_base of the adaptive distillation weight (the authors' default)")
    adaptive: bool = Field(True, description="scale λ_base by the share of old items and of exemplars (false: λ_base as is)")


class ADER(PeriodMethod):
    name = "ader"
    trains_with_its_own_loss = True

    def __init__(self, options: ADEROptions, seed: int):
        super().__init__(options, seed)
        self.exemplars = np.zeros(0, dtype=np.int64)
        self.logits = torch.zeros(0)
        self.old_items = torch.zeros(0, dtype=torch.bool)
        self.current_weight = 0.0

    def before_period(self, period: int, data: PeriodData, trainer: Any) -> None:
        if not len(self.exemplars):
            return
        base = self.options.weight
        if self.options.adaptive:
            items = int(data.items_until(period).sum())
            samples = len(data.timeline.training(period))
            self.current_weight = adaptive_weight(base, int(self.old_items.sum()), items, len(self.exemplars), samples)
        else:
            self.current_weight = base

    def batches(self, period: int, epoch: int, data: PeriodData, batch_size: int) -> BatchList:
        rng = np.random.default_rng([self.seed, period, epoch])
        chunks = shuffled_chunks(data.timeline.training(period), batch_size, rng)
        shares = np.array_split(rng.permutation(len(self.exemplars)), len(chunks)) if chunks else []
        batches = []
        for chunk, share in zip(chunks, shares or [np.zeros(0, dtype=np.int64)] * len(chunks)):
            rows = np.concatenate([np.full(len(chunk), -1), share])
            indices = np.concatenate([chunk, self.exemplars[share]]).astype(np.int64)
            batches.append(data.batch(indices, **{ROW: torch.as_tensor(rows, dtype=torch.long)}))
        return BatchList(batches)

    def loss(self, model: Any) -> Callable[[Interaction], torch.Tensor]:
        def ader_loss(interaction: Interaction) -> torch.Tensor:
            rows = interaction[ROW]
            exemplar = rows >= 0
            own = model.calculate_loss(interaction[~exemplar])
            loss = sum(own) if isinstance(own, tuple) else own
            if bool(exemplar.any()) and self.current_weight:
                student = model.full_sort_predict(interaction[exemplar])
                teacher = self.logits[rows[exemplar].cpu()].to(student.device)
                loss = loss + self.current_weight * ader_distillation(student, teacher, self.old_items.to(student.device))
            return loss

        return ader_loss

    def after_period(self, period: int, data: PeriodData, batch_size: int) -> None:
        pool = np.concatenate([data.timeline.training(period), self.exemplars])
        targets = data.timeline.items[pool]
        items, counts = np.unique(targets, return_counts=True)
        shares = np.random.default_rng([self.seed, period, 2]).multinomial(self.options.size, counts / counts.sum())
        chosen = []
        for item, share in zip(items, shares):
            if share:
                candidates = pool[targets == item]
                chosen.extend(candidates[herding(data.representations(candidates, batch_size), int(share))])
        self.exemplars = np.asarray(sorted(set(chosen)), dtype=np.int64)
        self.logits = data.scores(self.exemplars, batch_size) if len(self.exemplars) else torch.zeros(0)
        self.old_items = torch.as_tensor(data.items_until(period))

    def state_dict(self) -> dict[str, Any]:
        return {
            "exemplars": torch.as_tensor(self.exemplars),
            "logits": self.logits,
            "old_items": self.old_items,
            "weight": self.current_weight,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.exemplars = state["exemplars"].numpy().astype(np.int64)
        self.logits, self.old_items, self.current_weight = state["logits"], state["old_items"], float(state["weight"])


ADER_METHOD = periodic_method(
    "ader", ADEROptions, ADER, "ADER: herding exemplars per item + adaptive distillation of the previous model's scores"
)
