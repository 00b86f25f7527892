"""A terminal progress bar over each training epoch, as an Avalanche plugin."""

from __future__ import annotations

from typing import Any

from avalanche.training.plugins import SupervisedPlugin
from tqdm.auto import tqdm

from suite.progress import shows_progress


class EpochProgressPlugin(SupervisedPlugin):
    """One bar per epoch (experience, epoch, loss); adds nothing when quiet or when output is not a terminal."""

    def __init__(self, quiet: bool = False) -> None:
        super().__init__()
        self.quiet = quiet
        self.bar: Any = None

    def before_training_epoch(self, strategy: Any, **kwargs: Any) -> None:
        if not shows_progress(self.quiet):
            return
        experience = strategy.experience.current_experience
        desc = f"experience {experience} epoch {strategy.clock.train_exp_epochs + 1}/{strategy.train_epochs}"
        self.bar = tqdm(total=len(strategy.dataloader), desc=desc, leave=False, dynamic_ncols=True)

    def after_training_iteration(self, strategy: Any, **kwargs: Any) -> None:
        """Count the batch; read the loss only when tqdm redraws (a few times a second, not per batch)."""
        if self.bar is not None and self.bar.update(1):
            self.bar.set_postfix(loss=f"{strategy.loss.detach().sum().item():.3f}", refresh=False)

    def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        self.after_training_epoch(strategy)  # an epoch stopped before it ran (joint training) leaves its bar open

    def after_training_epoch(self, strategy: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
