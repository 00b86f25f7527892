"""MCLRec's bilevel meta-trainer, and the checkpoint mixin the suite's RecBole trainers share.

RecBole pickles its ``Config`` into checkpoints, which ``torch.load`` refuses under
``weights_only=True`` (torch >= 2.6): ``evaluate(load_best_model=True)`` and
``resume_checkpoint`` break. ``SuiteCheckpointing`` saves state dicts, tensors and plain
numbers only and loads them back with ``weights_only=True``. It also reports each epoch's
losses and validation metrics to an optional ``epoch_listener`` (the pipeline sends them
to MLflow). ``MetaTrainer`` runs MCLRec's per-batch bilevel optimization (METHODS.md section 2),
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
from collections.abc import Callable
from typing import Any

import torch
from recbole.trainer import Trainer
from torch.nn.utils import clip_grad_norm_

EpochListener = Callable[[str, int, dict[str, float]], None]


class SuiteCheckpointing:
    """Mixin for RecBole trainers: weights-only checkpoints and per-epoch reporting."""

    epoch_listener: EpochListener | None = None
    _current_epoch: int = 0

    def fit(self, *args: Any, **kwargs: Any) -> Any:
        """RecBole's ``fit`` with autograd anomaly detection off.

        Importing ``recbole.model.sequential_recommender`` runs SINE's module-level
        ``torch.autograd.set_detect_anomaly(True)``, which checks every backward node for
        NaN and makes every model train about 1.5x slower; the previous mode is restored.
        """
        with torch.autograd.set_detect_anomaly(False):
            return super().fit(*args, **kwargs)

    # -- checkpoints --------------------------------------------------------------------

    def checkpoint_state(self, epoch: int) -> dict[str, Any]:
        """Everything needed to resume: state dicts, tensors and plain numbers only."""
        return {
            "epoch": int(epoch),
            "cur_step": int(self.cur_step),
            "best_valid_score": float(self.best_valid_score),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
        }

    def load_checkpoint_state(self, state: dict[str, Any], with_optimizers: bool = True) -> None:
        self.model.load_state_dict(state["model"])
        if with_optimizers:
            self.optimizer.load_state_dict(state["optimizer"])

    def _save_checkpoint(self, epoch: int, verbose: bool = True, **kwargs: Any) -> None:
        saved_model_file = kwargs.pop("saved_model_file", self.saved_model_file)
        torch.save(self.checkpoint_state(epoch), saved_model_file)

    def resume_checkpoint(self, resume_file: str) -> None:
        """Resume training from a checkpoint written by ``_save_checkpoint`` (weights only)."""
        self.saved_model_file = str(resume_file)
        state = torch.load(self.saved_model_file, map_location=self.device, weights_only=True)
        self.start_epoch = state["epoch"] + 1
        self.cur_step = state["cur_step"]
        self.best_valid_score = state["best_valid_score"]
        self.load_checkpoint_state(state)

    def evaluate(self, eval_data: Any, load_best_model: bool = True, model_file: str | None = None, show_progress: bool = False) -> Any:
        """RecBole's evaluation; the best model is loaded from the suite's weights-only checkpoint."""
        if eval_data and load_best_model:
            state = torch.load(model_file or self.saved_model_file, map_location=self.device, weights_only=True)
            self.load_checkpoint_state(state, with_optimizers=False)
        return super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)

    # -- reporting ----------------------------------------------------------------------

    def _report(self, kind: str, values: dict[str, float]) -> None:
        if self.epoch_listener is not None:
            self.epoch_listener(kind, self._current_epoch, values)

    def _train_epoch(self, train_data: Any, epoch_idx: int, loss_func: Any = None, show_progress: bool = False) -> Any:
        self._current_epoch = epoch_idx
        total = super()._train_epoch(train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress)
        self._report("train", self._epoch_losses(total, max(len(train_data), 1)))
        return total

    def _epoch_losses(self, total: Any, batches: int) -> dict[str, float]:
        """Mean per batch of RecBole's summed epoch loss (or of each term of a tuple)."""
        if isinstance(total, tuple):
            names = getattr(self.model, "loss_term_names", None) or [str(index + 1) for index in range(len(total))]
            losses = {f"loss_{name}": value / batches for name, value in zip(names, total)}
            losses["loss"] = sum(total) / batches
            return losses
        return {"loss": float(total) / batches}

    def _valid_epoch(self, valid_data: Any, show_progress: bool = False) -> Any:
        score, result = super()._valid_epoch(valid_data, show_progress=show_progress)
        self._report("valid", {key: float(value) for key, value in result.items()})
        return score, result


class MetaTrainer(SuiteCheckpointing, Trainer):
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
