"""RecBole trainers with the suite's mixins (``checkpointing.py``), and MCLRec's bilevel meta-trainer.

The mixins give weights-only checkpoints with resume, per-epoch reports and anomaly
detection off during ``fit``. ``SuiteTrainer`` is RecBole's ``Trainer`` with only that changed;
``MetaTrainer`` runs MCLRec's per-batch bilevel optimization (METHODS.md section 2):

1. encoder step: augmenters frozen, encoder updated with L0;
2. augmenter step: views recomputed under the updated encoder with no encoder autograd,
   augmenters updated with L1 = L_cl2 + gamma R;
3. (``third_step``, the authors' code) the encoder again with L0.

``joint=True`` is MCLRec-J: one optimizer over everything, one step with L0.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import torch
from recbole.trainer import Trainer
from torch.nn.utils import clip_grad_norm_

from suite.sequential.checkpointing import AnomalyDetectionOff, EpochReporting, WeightsOnlyCheckpoints


class SuiteTrainer(AnomalyDetectionOff, EpochReporting, WeightsOnlyCheckpoints, Trainer):
    """RecBole's own ``Trainer`` (its training step untouched) with suite-owned checkpoints."""


class MetaTrainer(AnomalyDetectionOff, EpochReporting, WeightsOnlyCheckpoints, Trainer):
    """MCLRec's bilevel meta-optimization per batch; a RecBole ``Trainer`` in every other way.

    ``self.optimizer`` updates the encoder (everything, when ``joint``);
    ``self.augmenter_optimizer`` updates the augmenters. Config keys: ``meta_third_step``,
    ``meta_joint``, ``augmenter_learning_rate`` (defaults False, False, ``learning_rate``).
    """

    def __init__(self, config: Any, model: Any):
        self.third_step = bool(config["meta_third_step"])
        self.joint = bool(config["meta_joint"])
        if self.third_step and self.joint:
            raise ValueError("meta_third_step and meta_joint exclude each other: the joint variant has one step")
        if not hasattr(model, "encoder_loss_terms"):
            raise TypeError(
                f"MetaTrainer trains MCLRec-style models (encoder_loss_terms, augmenter_loss_terms); got {type(model).__name__}"
            )
        super().__init__(config, model)
        self.bilevel = model.has_augmenters and not self.joint
        self.augmenter_optimizer = self._build_augmenter_optimizer(config)

    def _build_optimizer(self, **kwargs: Any) -> torch.optim.Optimizer:
        """The encoder's optimizer (all parameters in the joint variant)."""
        if not self.joint and "params" not in kwargs:
            kwargs["params"] = self.model.encoder_parameters()
        return super()._build_optimizer(**kwargs)

    def _build_augmenter_optimizer(self, config: Any) -> torch.optim.Optimizer | None:
        if not self.bilevel:
            return None
        rate = config["augmenter_learning_rate"] or self.learning_rate
        return super()._build_optimizer(params=self.model.augmenter_parameters(), learning_rate=rate)

    @property
    def steps_description(self) -> str:
        """What ran, for the run's params: joint, two-step or three-step (or no augmenters)."""
        if not self.model.has_augmenters:
            return "single-step (no augmenters)"
        if self.joint:
            return "joint (MCLRec-J)"
        return "three-step" if self.third_step else "two-step"

    # -- checkpoints: both optimizers and the augmenters --------------------------------

    def checkpoint_state(self, epoch: int) -> dict[str, Any]:
        state = super().checkpoint_state(epoch)
        state["augmenters"] = self.model.augmenters.state_dict()
        state["encoder_optimizer"] = state.pop("optimizer")
        if self.augmenter_optimizer is not None:
            state["augmenter_optimizer"] = self.augmenter_optimizer.state_dict()
        return state

    def load_checkpoint_state(self, state: dict[str, Any], with_optimizers: bool = True) -> None:
        self.model.load_state_dict(state["model"])
        if with_optimizers:
            self.optimizer.load_state_dict(state["encoder_optimizer"])
            if self.augmenter_optimizer is not None and "augmenter_optimizer" in state:
                self.augmenter_optimizer.load_state_dict(state["augmenter_optimizer"])

    # -- the bilevel steps --------------------------------------------------------------

    def encoder_step(self, interaction: Any, views: Any) -> dict[str, float]:
        """Step 1 (and 3): update the encoder with L0; the augmenters get no gradient."""
        frozen = self.model.augmenter_parameters() if self.bilevel else []
        for parameter in frozen:
            parameter.requires_grad_(False)
        try:
            terms = self.model.encoder_loss_terms(interaction, views)
            loss = sum(terms.values())
            self._check_nan(loss)
            self.optimizer.zero_grad()
            loss.backward()
            if self.clip_grad_norm:
                clip_grad_norm_(self.model.parameters(), **self.clip_grad_norm)
            self.optimizer.step()
        finally:
            for parameter in frozen:
                parameter.requires_grad_(True)
        return {**{key: value.item() for key, value in terms.items()}, "total": loss.item()}

    def augmenter_step(self, views: Any) -> dict[str, float]:
        """Step 2: update the augmenters with L1 on views re-encoded by the updated encoder."""
        terms = self.model.augmenter_loss_terms(views)
        loss = sum(terms.values())
        self._check_nan(loss)
        self.augmenter_optimizer.zero_grad()
        loss.backward()
        self.augmenter_optimizer.step()
        return {f"augmenter_{key}": value.item() for key, value in terms.items()} | {"augmenter_total": loss.item()}

    def train_batch(self, interaction: Any) -> dict[str, float]:
        """One batch of meta-optimization; returns each loss term's value."""
        views = self.model.draw_views(interaction)
        losses = self.encoder_step(interaction, views)
        if self.bilevel:
            losses.update(self.augmenter_step(views))
            if self.third_step:
                losses.update({f"step3_{key}": value for key, value in self.encoder_step(interaction, views).items()})
        return losses

    def _train_epoch(self, train_data: Any, epoch_idx: int, loss_func: Any = None, show_progress: bool = False) -> float:
        """One epoch of ``train_batch``; RecBole gets the summed L0, MLflow each term's mean."""
        self._current_epoch = epoch_idx
        self.model.train()
        sums: dict[str, float] = defaultdict(float)
        batches = 0
        for interaction in train_data:
            for key, value in self.train_batch(interaction.to(self.device)).items():
                sums[key] += value
            batches += 1
        means = {f"loss_{key}": value / max(batches, 1) for key, value in sums.items()}
        self._report("train", means)
        return sums.get("total", math.nan)
