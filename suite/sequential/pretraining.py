"""S3Rec's two stages, as RecBole runs them: self-supervised pre-training, then fine-tuning.

RecBole trains S3Rec twice with two configs: ``train_stage: pretrain`` through its
``PretrainTrainer`` (``pretrain_epochs`` epochs of the four attribute/item/segment losses, no
validation), then ``train_stage: finetune`` with ``pre_model_path`` naming the saved weights,
through the ordinary ``Trainer`` (early stopping on validation). The suite does the same in
the run's own folder: the pre-training run lives in ``<run>/pretrain`` and leaves
``<run>/saved/pretrained.pth`` (a state dict only: RecBole's own file pickles its Config,
which torch >= 2.6 refuses to load); the fine-tuning is an ordinary suite run
(``pipeline.run_sequential``: MLflow, checkpoints, resume). Pre-training losses are logged as
``pretrain.loss`` (step = epoch). A resumed run (a fresh run folder) pre-trains again, from the
same seed, then continues the fine-tuning from its last checkpoint.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import torch
from recbole.trainer import PretrainTrainer

from suite.api import RunContext
from suite.sequential.checkpointing import EpochReporting
from suite.sequential.pipeline import build_run, config_dict_for, recbole_warnings_filtered, run_sequential

PRETRAINED_FILE = "pretrained.pth"


class WeightsOnlyPretrainer(EpochReporting, PretrainTrainer):
    """RecBole's ``PretrainTrainer``, saving the pre-trained weights as a state dict only."""

    def save_pretrained_model(self, epoch: int, saved_model_file: str) -> None:
        torch.save({"epoch": int(epoch), "state_dict": self.model.state_dict()}, saved_model_file)
        self.saved_model_file = saved_model_file


def needs_pretraining(model_class: type) -> bool:
    """RecBole's models with a ``train_stage`` of pre-training (S3Rec)."""
    from recbole.model.sequential_recommender import S3Rec

    return issubclass(model_class, S3Rec)


def pretrain(ctx: RunContext, target: Path) -> None:
    """RecBole's pre-training stage for ``pretrain_epochs`` epochs; the weights go to ``target``."""
    model_class, model_fragment = ctx.model_entry.build(ctx.model_options)
    epochs = int(model_fragment["pretrain_epochs"])
    stage = {"train_stage": "pretrain", "pre_model_path": "", "save_step": epochs + 1}  # saved once, below
    run_dir = Path(ctx.run_dir) / "pretrain"
    run_dir.mkdir(parents=True, exist_ok=True)
    scenario = ctx.build_scenario()
    config_dict = config_dict_for(scenario.config_fragment(), model_fragment, ctx.train_options, ctx.seed, run_dir, stage)
    run = build_run(model_class, config_dict, WeightsOnlyPretrainer, run_dir, ctx.train_options.torch_device())
    run.trainer.epoch_listener = _pretrain_log(ctx)
    with contextlib.chdir(run_dir), recbole_warnings_filtered(), torch.autograd.set_detect_anomaly(False):
        run.trainer.pretrain(run.train_data, verbose=False, show_progress=False)
    target.parent.mkdir(parents=True, exist_ok=True)
    run.trainer.save_pretrained_model(epochs - 1, str(target))


def _pretrain_log(ctx: RunContext) -> Any:
    def log(kind: str, epoch: int, values: dict[str, float]) -> None:
        ctx.tracker.log_metrics({f"pretrain.{key}": value for key, value in values.items()}, step=epoch)

    return log


def run_pretrained(ctx: RunContext, trainer_class: type) -> dict[str, float]:
    """Pre-train (unless the run's folder already holds the weights), then fine-tune as a suite run."""
    target = (Path(ctx.run_dir) / "saved" / PRETRAINED_FILE).resolve()
    if not target.is_file():
        pretrain(ctx, target)
    return run_sequential(ctx, trainer_class, {"train_stage": "finetune", "pre_model_path": str(target)})
