"""What the suite adds to RecBole's ``Trainer``, one mixin per idea.

- ``WeightsOnlyCheckpoints``: RecBole pickles its ``Config`` into checkpoints, which
  ``torch.load`` refuses under ``weights_only=True`` (torch >= 2.6), so
  ``evaluate(load_best_model=True)`` and ``resume_checkpoint`` break. This mixin saves state
  dicts, tensors and plain numbers only, and after every validated epoch hands a *resume
  state* to ``resume_store`` (the run's ``CheckpointStore``): the model, every optimizer,
  every random generator (the global ones and each dataloader's own), the epoch, the
  early-stopping counters, the best checkpoint so far and the seconds trained so far
  (``run_clock``, ``suite.run_clock``). ``restore_resume_state`` puts all
  of it back, and ``fit`` continues at the next epoch exactly as an uninterrupted run would.
- ``EpochReporting``: each epoch's losses and validation metrics go to an optional
  ``epoch_listener`` (the pipeline sends them to MLflow and prints one line).
- ``AnomalyDetectionOff``: importing ``recbole.model.sequential_recommender`` runs SINE's
  module-level ``torch.autograd.set_detect_anomaly(True)``, which makes every model train
  about 1.5x slower; ``fit`` runs with anomaly detection off and restores the mode after.

A suite trainer lists them before RecBole's class:
``class RecBoleTrainer(AnomalyDetectionOff, EpochReporting, WeightsOnlyCheckpoints, Trainer)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import torch

from suite.run_clock import STATE_KEY, RunClock
from suite.seeding import restore_rng_state, rng_state

EpochListener = Callable[[str, int, dict[str, float]], None]
RESUME_FORMAT = 1


class ResumeStore(Protocol):
    """Where resume states go (``suite.checkpoints.CheckpointStore`` in a suite run)."""

    def save(self, state: Mapping[str, Any]) -> None: ...


class WeightsOnlyCheckpoints:
    """Weights-only best checkpoints, and a resume state saved after every validated epoch."""

    resume_store: ResumeStore | None = None
    run_clock: RunClock | None = None

    # -- the best checkpoint (RecBole's saved_model_file) -----------------------------------

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Every optimizer the trainer holds, by attribute name (MCLRec's trainer has two)."""
        return {name: value for name, value in vars(self).items() if isinstance(value, torch.optim.Optimizer)}

    def checkpoint_state(self, epoch: int) -> dict[str, Any]:
        """The model, every optimizer and the early-stopping counters: state dicts and numbers only."""
        return {
            "epoch": int(epoch),
            "cur_step": int(self.cur_step),
            "best_valid_score": float(self.best_valid_score),
            "model": self.model.state_dict(),
            **{name: optimizer.state_dict() for name, optimizer in self.optimizers().items()},
        }

    def load_checkpoint_state(self, state: dict[str, Any], with_optimizers: bool = True) -> None:
        self.model.load_state_dict(state["model"])
        if with_optimizers:
            for name, optimizer in self.optimizers().items():
                optimizer.load_state_dict(state[name])

    def _save_checkpoint(self, epoch: int, verbose: bool = True, **kwargs: Any) -> None:
        saved_model_file = kwargs.pop("saved_model_file", self.saved_model_file)
        torch.save(self.checkpoint_state(epoch), saved_model_file)

    def resume_checkpoint(self, resume_file: str) -> None:
        """RecBole's resume from a checkpoint written by ``_save_checkpoint`` (weights only)."""
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

    # -- resume ---------------------------------------------------------------------------

    def training_finished(self) -> bool:
        """All epochs ran, or early stopping fired (RecBole stops once ``cur_step`` exceeds ``stopping_step``)."""
        return self.start_epoch >= self.epochs or self.cur_step > self.stopping_step

    def fit(self, train_data: Any, valid_data: Any = None, verbose: bool = True, saved: bool = True, **kwargs: Any) -> Any:
        """RecBole's ``fit``, saving a resume state after each validated epoch; a finished run trains no more."""
        if self.training_finished():
            return self.best_valid_score, self.best_valid_result
        callback_fn = kwargs.pop("callback_fn", None)

        def after_validation(epoch_idx: int, valid_score: float) -> None:
            # RecBole calls this after early stopping has updated its counters and saved the best model
            if self.resume_store is not None:
                self.resume_store.save(self.resume_state(epoch_idx, train_data, valid_data))
            if callback_fn is not None:
                callback_fn(epoch_idx, valid_score)

        return super().fit(train_data, valid_data, verbose=verbose, saved=saved, callback_fn=after_validation, **kwargs)

    def resume_state(self, epoch: int, train_data: Any, valid_data: Any = None) -> dict[str, Any]:
        """Everything the next epoch depends on, as state dicts, tensors and plain values."""
        best = Path(self.saved_model_file)
        return {
            "format": RESUME_FORMAT,
            **self.checkpoint_state(epoch),
            "best_valid_result": None if self.best_valid_result is None else {k: float(v) for k, v in self.best_valid_result.items()},
            "best_checkpoint": torch.load(best, map_location="cpu", weights_only=True) if best.is_file() else None,
            "rng": rng_state(),
            "loader_generators": _loader_generators(train_data, valid_data),
            STATE_KEY: None if self.run_clock is None else self.run_clock.seconds(),
        }

    def restore_resume_state(self, state: dict[str, Any], train_data: Any, valid_data: Any = None) -> None:
        """Put a trainer built afresh (same config and seed) where ``resume_state`` left the old one."""
        if state.get("format") != RESUME_FORMAT:
            raise ValueError(f"resume state format {state.get('format')!r}, expected {RESUME_FORMAT}")
        self.load_checkpoint_state(state)
        self.start_epoch = state["epoch"] + 1
        self.cur_step = state["cur_step"]
        self.best_valid_score = state["best_valid_score"]
        self.best_valid_result = state["best_valid_result"]
        if state["best_checkpoint"] is not None:
            torch.save(state["best_checkpoint"], self.saved_model_file)
        restore_rng_state(state["rng"])
        if self.run_clock is not None:
            self.run_clock.resume(state)
        for name, loader in (("train", train_data), ("valid", valid_data)):
            if loader is not None:
                loader.generator.set_state(state["loader_generators"][name].cpu())  # a CPU generator, wherever the state was loaded


def _loader_generators(train_data: Any, valid_data: Any) -> dict[str, torch.Tensor]:
    """RecBole's dataloaders shuffle with a generator of their own (seeded from ``seed``), not the global one."""
    loaders = {"train": train_data, "valid": valid_data}
    return {name: loader.generator.get_state() for name, loader in loaders.items() if loader is not None}


class EpochReporting:
    """Reports each epoch's mean losses (``train``) and validation metrics (``valid``) to ``epoch_listener``."""

    epoch_listener: EpochListener | None = None
    _current_epoch: int = 0

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


class AnomalyDetectionOff:
    """``fit`` with autograd anomaly detection off (SINE's import switches it on process-wide)."""

    def fit(self, *args: Any, **kwargs: Any) -> Any:
        with torch.autograd.set_detect_anomaly(False):
            return super().fit(*args, **kwargs)
