"""An Avalanche ``SupervisedTemplate`` for sequence-to-sequence SLU.

Why a subclass and not just plugins: the template's forward and criterion assume
``model(x) -> class logits``; a seq2seq model needs the lengths and the teacher-forced
target tokens, and the loss is a token cross-entropy. Everything method-specific (replay,
distillation, contrastive losses) stays in plugins that hook the template's lifecycle.

Batches are ``(x, y, x_lens, tokens, t)`` as the SLU scenarios' ``collate_fn`` makes them.
Avalanche's training loader ignores a dataset's ``collate_fn`` when the benchmark carries
no task labels, so both loaders are built here with the scenario's ``collate_fn``.

Which samples of a batch are rehearsal samples: in class-incremental learning the classes of
the current experience are disjoint from earlier ones, so R is exactly the set of samples
whose label is not a class of the current experience (METHODS.md's definition). The mask
``rehearsal_mask`` is derived from the labels, which holds for any loader, Avalanche's
``ReplayDataLoader`` included.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from avalanche.training.plugins import EvaluationPlugin, SupervisedPlugin
from avalanche.training.templates import SupervisedTemplate
from torch import Tensor, nn
from torch.utils.data import DataLoader


class Seq2SeqTemplate(SupervisedTemplate):
    """Teacher-forced seq2seq training on Avalanche experiences; plugins see encoder outputs."""

    def __init__(
        self,
        *,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        collate_fn: Callable[[list], Any],
        pad_id: int,
        bos_id: int,
        eos_id: int,
        max_decode_len: int = 32,
        label_smoothing: float = 0.0,
        intent_weight: float = 1.0,
        grad_clip: float | None = None,
        train_mb_size: int = 32,
        train_epochs: int = 1,
        eval_mb_size: int = 64,
        device: str | torch.device = "cpu",
        plugins: Sequence[SupervisedPlugin] | None = None,
        evaluator: EvaluationPlugin | None = None,
    ):
        super().__init__(
            model=model,
            optimizer=optimizer,
            criterion=nn.CrossEntropyLoss(ignore_index=pad_id, label_smoothing=label_smoothing, reduction="none"),
            train_mb_size=train_mb_size,
            train_epochs=train_epochs,
            eval_mb_size=eval_mb_size,
            device=device,
            plugins=list(plugins or []),
            evaluator=evaluator or EvaluationPlugin(loggers=[]),
        )
        self.collate_fn = collate_fn
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id
        self.max_decode_len = max_decode_len
        self.grad_clip = grad_clip
        self.intent_weight = intent_weight
        self.current_classes = torch.zeros(0, dtype=torch.long)
        self.seen_experiences: set[int] = set()
        self.mb_memory: Tensor | None = None
        self.mb_memory_mask: Tensor | None = None

    # ---- the minibatch ------------------------------------------------------------------
    @property
    def mb_x_lens(self) -> Tensor:
        return self.mbatch[2]

    @property
    def mb_tokens(self) -> Tensor:
        return self.mbatch[3]

    @property
    def mb_pooled(self) -> Tensor:
        """Masked-mean encoder embedding a_i of every sample of the current batch."""
        return self.model.pooled(self.mb_memory, self.mb_memory_mask)

    @property
    def rehearsal_mask(self) -> Tensor:
        """True for the batch's rehearsal samples: labels outside the current experience."""
        current = self.current_classes.to(self.mb_y.device)
        return ~torch.isin(self.mb_y, current)

    # ---- forward and loss ---------------------------------------------------------------
    def forward(self) -> Tensor:
        memory, mask = self.model.encode(self.mb_x, self.mb_x_lens)
        self.mb_memory, self.mb_memory_mask = memory, mask
        return self.model.decode(memory, mask, self.mb_tokens[:, :-1])

    def criterion(self) -> Tensor:
        """Token cross-entropy of the next-token logits against the shifted targets, pad ignored.

        The intent token (the first target) can weigh ``intent_weight`` times a word: with
        1.0 this is the plain mean token cross-entropy.
        """
        logits, targets = self.mb_output, self.mb_tokens[:, 1:]
        per_token = self._criterion(logits.reshape(-1, logits.size(-1)), targets.reshape(-1)).view_as(targets)
        return weighted_token_mean(per_token, targets, self.pad_id, self.intent_weight)

    def optimizer_step(self) -> None:
        if self.grad_clip:
            nn.utils.clip_grad_norm_(optimized_parameters(self.optimizer), self.grad_clip)
        super().optimizer_step()

    # ---- data ---------------------------------------------------------------------------
    def train_dataset_adaptation(self, **kwargs: Any) -> None:
        super().train_dataset_adaptation(**kwargs)
        self.current_classes = torch.as_tensor(sorted(self.experience.classes_in_this_experience), dtype=torch.long)
        self.seen_experiences.add(self.experience.current_experience)

    def make_train_dataloader(
        self,
        num_workers: int = 0,
        shuffle: bool = True,
        pin_memory: bool | None = None,
        persistent_workers: bool = False,
        drop_last: bool = False,
        **kwargs: Any,
    ) -> None:
        self.dataloader = DataLoader(
            self.adapted_dataset,
            batch_size=self.train_mb_size,
            shuffle=shuffle,
            collate_fn=self.collate_fn,
            num_workers=num_workers,
            drop_last=drop_last,
        )

    def make_eval_dataloader(
        self, num_workers: int = 0, shuffle: bool = False, pin_memory: bool | None = None, persistent_workers: bool = False, **kwargs: Any
    ) -> None:
        self.dataloader = DataLoader(
            self.adapted_dataset,
            batch_size=self.eval_mb_size,
            shuffle=False,
            collate_fn=self.collate_fn,
            num_workers=num_workers,
        )


def weighted_token_mean(per_token: Tensor, targets: Tensor, pad_id: int, intent_weight: float = 1.0) -> Tensor:
    """Mean of per-token losses over non-pad targets, the first target (the intent) weighted."""
    weights = (targets != pad_id).to(per_token.dtype)
    if intent_weight != 1.0:
        weights[:, 0] = weights[:, 0] * intent_weight
    return (per_token * weights).sum() / weights.sum().clamp(min=1.0)


def sequence_loss(model: nn.Module, batch: Sequence[Tensor], pad_id: int, intent_weight: float = 1.0) -> Tensor:
    """The template's training loss on one collated batch, for code outside the template (EWC, benchmarks)."""
    x, _, x_lens, tokens = batch[0], batch[1], batch[2], batch[3]
    logits = model(x, x_lens, tokens[:, :-1])
    targets = tokens[:, 1:]
    per_token = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=pad_id, reduction="none")
    return weighted_token_mean(per_token.view_as(targets), targets, pad_id, intent_weight)


def optimized_parameters(optimizer: torch.optim.Optimizer) -> list[Tensor]:
    """Every parameter the optimizer updates (the model's, then those plugins added), in group order."""
    return [parameter for group in optimizer.param_groups for parameter in group["params"]]


def add_to_optimizer(optimizer: torch.optim.Optimizer, module: nn.Module) -> None:
    """Let a plugin's own module train: its parameters become a group of ``optimizer`` (once).

    The group takes the optimizer's defaults (learning rate, weight decay). Avalanche's
    ``make_optimizer`` keeps parameters that are not the model's, so the group, and its state,
    survive every later experience.
    """
    present = {id(parameter) for parameter in optimized_parameters(optimizer)}
    new = [parameter for parameter in module.parameters() if id(parameter) not in present]
    if new:
        optimizer.add_param_group({"params": new})
