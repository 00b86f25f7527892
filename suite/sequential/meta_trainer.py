"""MCLRec's bilevel meta-trainer: RecBole's ``Trainer`` with the suite's mixins (``checkpointing.py``).

``MetaTrainer`` runs MCLRec's per-batch bilevel optimization (docs/methods.md 2.4),
as the config key ``meta_optimization`` says:

1. encoder step: augmenters frozen, encoder updated with
   L0 = L_rec + lambda L_cl1 + beta (L_cl2 + 0.1 R);
2. augmenter step: views recomputed under the updated encoder with no encoder autograd,
   augmenters updated with L1 = L_cl2 + 0.1 R (the 0.1s: ``regularizer_weight`` and
   ``augmenter_regularizer_weight``);
3. (``three-step``, the authors' code and the default) the encoder again with L0, on the same
   batch and views.

``joint`` is MCLRec-J: one optimizer over everything, one step with L0.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from recbole.trainer import Trainer
from torch.nn.utils import clip_grad_norm_

from suite.sequential.checkpointing import AnomalyDetectionOff, EpochReporting, WeightsOnlyCheckpoints


class MetaTrainer(AnomalyDetectionOff, EpochReporting, WeightsOnlyCheckpoints, Trainer):
    """MCLRec's bilevel meta-optimization per batch; a RecBole ``Trainer`` in every other way.

    ``self.optimizer`` updates the encoder (everything, when ``joint``);
    ``self.augmenter_optimizer`` updates the augmenters. Config keys (defaults in
    ``models/mclrec.yaml``): ``meta_optimization`` (``two-step``, ``three-step`` or ``joint``)
    and ``augmenter_learning_rate`` (None: ``learning_rate``).
    """

    OPTIMIZATIONS = ("two-step", "three-step", "joint")

    def __init__(self, config: Any, model: Any):
        optimization = config["meta_optimization"]
        if optimization not in self.OPTIMIZATIONS:
            raise ValueError(f"meta_optimization must be one of {', '.join(self.OPTIMIZATIONS)}, got {optimization!r}")
        self.third_step = optimization == "three-step"
        self.joint = optimization == "joint"
        if not self.trains(type(model)):
            raise TypeError(
                f"MetaTrainer trains MCLRec-style models (encoder_loss_terms, augmenter_loss_terms); got {type(model).__name__}"
            )
        super().__init__(config, model)
        self.bilevel = model.has_augmenters and not self.joint
        self.augmenter_optimizer = self._build_augmenter_optimizer(config)

    @staticmethod
    def trains(model_class: type) -> bool:
        """Whether a model class has the two sides of the bilevel problem this trainer needs."""
        return all(hasattr(model_class, name) for name in ("encoder_loss_terms", "augmenter_loss_terms", "augmenter_parameters"))

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
    # Loss values stay on the device (detached tensors): nothing here reads a number back per
    # batch, so a GPU never waits for the host; the epoch reads its sums once at its end.

    def encoder_step(self, interaction: Any, views: Any) -> dict[str, torch.Tensor]:
        """Step 1 (and 3): update the encoder with L0; the augmenters get no gradient."""
        frozen = self.model.augmenter_parameters() if self.bilevel else []
        for parameter in frozen:
            parameter.requires_grad_(False)
        try:
            terms = self.model.encoder_loss_terms(interaction, views)
            loss = sum(terms.values())
            self.optimizer.zero_grad()
            loss.backward()
            if self.clip_grad_norm:
                clip_grad_norm_(self.model.parameters(), **self.clip_grad_norm)
            self.optimizer.step()
        finally:
            for parameter in frozen:
                parameter.requires_grad_(True)
        return {**{key: value.detach() for key, value in terms.items()}, "total": loss.detach()}

    def augmenter_step(self, views: Any) -> dict[str, torch.Tensor]:
        """Step 2: update the augmenters with L1 on views re-encoded by the updated encoder."""
        terms = self.model.augmenter_loss_terms(views)
        loss = sum(terms.values())
        self.augmenter_optimizer.zero_grad()
        loss.backward()
        self.augmenter_optimizer.step()
        return {f"augmenter_{key}": value.detach() for key, value in terms.items()} | {"augmenter_total": loss.detach()}

    def train_batch(self, interaction: Any) -> dict[str, torch.Tensor]:
        """One batch of meta-optimization; returns each loss term's value (a 0-d tensor on the device)."""
        views = self.model.draw_views(interaction)
        losses = self.encoder_step(interaction, views)
        if self.bilevel:
            losses.update(self.augmenter_step(views))
            if self.third_step:
                losses.update({f"step3_{key}": value for key, value in self.encoder_step(interaction, views).items()})
        return losses

    def _train_epoch(self, train_data: Any, epoch_idx: int, loss_func: Any = None, show_progress: bool = False) -> float:
        """One epoch of ``train_batch``; RecBole gets the summed L0, MLflow each term's mean.

        A loss that is not finite fails the run at the end of the epoch, naming the first
        such batch (kept on the device until then, like the sums).
        """
        self._current_epoch = epoch_idx
        self.model.train()
        sums: dict[str, torch.Tensor] = {}
        first_bad = torch.tensor(-1, device=self.device)
        batches = 0
        for batch_index, interaction in enumerate(train_data):
            losses = self.train_batch(interaction.to(self.device))
            for key, value in losses.items():
                sums[key] = sums[key] + value if key in sums else value
            bad = ~torch.isfinite(losses["total"]) | ~torch.isfinite(losses.get("augmenter_total", losses["total"]))
            first_bad = torch.where((first_bad < 0) & bad, batch_index, first_bad)
            batches = batch_index + 1
        if int(first_bad) >= 0:
            raise ValueError(f"training loss is not finite (epoch {epoch_idx}, batch {int(first_bad)})")
        totals = dict(zip(sums, torch.stack(list(sums.values())).tolist())) if sums else {}
        self._report("train", {f"loss_{key}": value / max(batches, 1) for key, value in totals.items()})
        return totals.get("total", math.nan)
