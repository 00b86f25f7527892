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
whose label is not a class of the current experience (docs/methods.md 1.3). The mask
``rehearsal_mask`` is derived from the labels, which holds for any loader, Avalanche's
``ReplayDataLoader`` included. It is computed on the CPU batch before it moves to the device,
so plugins branch on ``mb_has_rehearsal``/``mb_has_new`` without waiting for the device.

Loss terms: the criterion's token cross-entropy is the ``seq2seq`` term; a plugin adds its own
term with ``add_loss(name, value, weight)`` (``loss += weight * value``), which also keeps the
term's value for the per-epoch loss curves. Nothing here reads a device value per batch: the
epoch metrics accumulate on the device and read once per epoch, and a non-finite loss is
caught per batch on the CPU and at the end of the epoch on an accelerator
(``NonFiniteLossError``, naming the experience, epoch and batch).

Gradient clipping bounds either the total loss's gradient (``grad_clip_on="total_loss"``, the
default) or the seq2seq loss's alone, the other terms' gradients added unclipped after it
(``"seq2seq_loss"``).
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

GRAD_CLIP_ON = ("total_loss", "seq2seq_loss")


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite: the run stops instead of training on."""


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
        grad_clip_on: str = "total_loss",
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
            # for Avalanche's own code only: the template's loss is token_loss (criterion below)
            criterion=nn.CrossEntropyLoss(ignore_index=pad_id, label_smoothing=label_smoothing),
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
        if grad_clip_on not in GRAD_CLIP_ON:
            raise ValueError(f"grad_clip_on must be one of {', '.join(GRAD_CLIP_ON)}, got '{grad_clip_on}'")
        self.grad_clip = grad_clip
        self.grad_clip_on = grad_clip_on
        self.intent_weight = intent_weight
        self.label_smoothing = label_smoothing
        self.current_classes = torch.zeros(0, dtype=torch.long)
        self.seen_experiences: set[int] = set()
        self.mb_memory: Tensor | None = None
        self.mb_memory_mask: Tensor | None = None
        self.mb_rehearsal: Tensor | None = None
        self.mb_rehearsal_index: Tensor | None = None
        self.mb_new_index: Tensor | None = None
        self.mb_has_rehearsal = False
        self.mb_has_new = False
        self.loss_terms: dict[str, Tensor] = {}
        self.grad_norm: Tensor | None = None
        self._seq2seq_loss: Tensor | None = None
        self._aux_loss: Tensor | None = None
        self._first_nonfinite: Tensor | None = None
        self.check_finite_per_batch = torch.device(device).type == "cpu"
        """Read the loss's finiteness every batch (free on the CPU); else once per epoch, from the device."""

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
        """True for the batch's rehearsal samples: labels outside the current experience (on the device)."""
        if self.mb_rehearsal is None:
            self.mb_rehearsal = ~torch.isin(self.mb_y, self.current_classes.to(self.mb_y.device))
        return self.mb_rehearsal

    def _unpack_minibatch(self) -> None:
        """Split rehearsal from new samples on the CPU labels, then move the batch (and the split) to the device.

        Plugins select rows with ``mb_rehearsal_index``/``mb_new_index`` (index tensors: no device
        read, unlike a boolean mask) and branch on ``mb_has_rehearsal``/``mb_has_new`` (plain bools).
        """
        self.mb_rehearsal = None
        if not self.is_training:
            super()._unpack_minibatch()
            return
        labels = self.mbatch[1].cpu()
        rehearsal = ~torch.isin(labels, self.current_classes)
        super()._unpack_minibatch()
        self.mb_has_rehearsal, self.mb_has_new = bool(rehearsal.any()), bool((~rehearsal).any())
        self.mb_rehearsal = rehearsal.to(self.device, non_blocking=True)
        self.mb_rehearsal_index = rehearsal.nonzero().squeeze(1).to(self.device, non_blocking=True)
        self.mb_new_index = (~rehearsal).nonzero().squeeze(1).to(self.device, non_blocking=True)

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
        loss = token_loss(self.mb_output, self.mb_tokens[:, 1:], self.pad_id, self.intent_weight, self.label_smoothing)
        self._seq2seq_loss, self._aux_loss = loss, None
        self.loss_terms = {"seq2seq": loss.detach()}
        return loss

    def add_loss(self, name: str, value: Tensor, weight: float = 1.0, logged: Tensor | None = None) -> None:
        """Add ``weight * value`` to the batch loss, and keep ``value`` (or ``logged``) as the term ``name``."""
        weighted = weight * value
        self.loss = self.loss + weighted
        self._aux_loss = weighted if self._aux_loss is None else self._aux_loss + weighted
        self.loss_terms[name] = (value if logged is None else logged).detach()

    def backward(self) -> None:
        self._check_finite()
        if self.grad_clip and self.grad_clip_on == "seq2seq_loss":
            self._seq2seq_loss.backward(retain_graph=self._aux_loss is not None)
            self.grad_norm = nn.utils.clip_grad_norm_(optimized_parameters(self.optimizer), self.grad_clip)
            if self._aux_loss is not None:
                self._aux_loss.backward()
        else:
            super().backward()

    def optimizer_step(self) -> None:
        if self.grad_clip and self.grad_clip_on == "total_loss":
            self.grad_norm = nn.utils.clip_grad_norm_(optimized_parameters(self.optimizer), self.grad_clip)
        super().optimizer_step()

    # ---- a NaN or inf loss stops the run --------------------------------------------------
    def _check_finite(self) -> None:
        """Per batch on the CPU; on an accelerator, remember the first bad batch on the device (no sync)."""
        finite = torch.isfinite(self.loss.detach()).all()
        if self.check_finite_per_batch:
            if not bool(finite):
                self._raise_nonfinite(self.clock.train_epoch_iterations)
            return
        batch = torch.full((), self.clock.train_epoch_iterations, device=self.device)
        if self._first_nonfinite is None:
            self._first_nonfinite = torch.full((), -1, device=self.device)
        self._first_nonfinite = torch.where((self._first_nonfinite < 0) & ~finite, batch, self._first_nonfinite)

    def training_epoch(self, **kwargs: Any) -> None:
        self._first_nonfinite = None
        super().training_epoch(**kwargs)
        if self._first_nonfinite is not None and (batch := int(self._first_nonfinite)) >= 0:
            self._raise_nonfinite(batch)

    def _raise_nonfinite(self, batch: int) -> None:
        terms = ", ".join(f"{name} {value.item():.4g}" for name, value in self.loss_terms.items()) if self.check_finite_per_batch else ""
        raise NonFiniteLossError(
            f"non-finite training loss at experience {self.experience.current_experience}, epoch {self.clock.train_exp_epochs}, "
            f"batch {batch}{f' ({terms})' if terms else ''}; stopped instead of training on"
        )

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


def token_loss(logits: Tensor, targets: Tensor, pad_id: int, intent_weight: float = 1.0, label_smoothing: float = 0.0) -> Tensor:
    """The seq2seq loss: token cross-entropy of next-token logits [B, L, V] against targets [B, L], pad ignored, intent weighted."""
    flat = logits.reshape(-1, logits.size(-1))
    per_token = F.cross_entropy(flat, targets.reshape(-1), ignore_index=pad_id, label_smoothing=label_smoothing, reduction="none")
    return weighted_token_mean(per_token.view_as(targets), targets, pad_id, intent_weight)


def sequence_loss(
    model: nn.Module, batch: Sequence[Tensor], pad_id: int, intent_weight: float = 1.0, label_smoothing: float = 0.0
) -> Tensor:
    """The template's training loss on one collated batch, for code outside the template (EWC, benchmarks)."""
    x, _, x_lens, tokens = batch[0], batch[1], batch[2], batch[3]
    return token_loss(model(x, x_lens, tokens[:, :-1]), tokens[:, 1:], pad_id, intent_weight, label_smoothing)


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
