"""COCONUT (Cappellazzo et al., Findings of ACL 2024): replay + NSPT + MM.

Added to a replay strategy, this plugin adds two terms to the seq2seq loss before backward:

- NSPT on the rehearsal samples: student anchors, teacher positives, student negatives
  (``losses/nspt.py``), through the ``nspt`` projection head; off in the first experience,
  when there is no teacher;
- MM on the new samples: audio-text SupCon between ``mm_audio(a_i)`` and ``mm_text(e_j)``
  (``losses/mm.py``), e_j the mean decoder token embedding of sample j's transcript.

The three projection heads are COCONUT's own modules (``CoconutHeads``): the plugin builds
them beside the model, puts them in the optimizer, and keeps a frozen copy for the teacher.

    L = L_seq2seq + nspt_weight * L_nspt + mm_weight * L_mm

Each loss's ``variant`` picks its denominator: ``infonce`` (the paper's, the default) or ``dcl``
(the positives removed from it; ``losses/dcl.py``); the temperature means the same in both.

Sequence-level distillation (``skd.py``) composes with it as a separate plugin.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field
from torch import nn

from models.projection_head import ProjectionHead
from suite.api import Options
from suite.continual.entries import MethodSetup, continual_method
from suite.continual.losses.dcl import Variant
from suite.continual.losses.mm import mm_loss
from suite.continual.losses.nspt import nspt_loss
from suite.continual.options import KDWeight
from suite.continual.replay import ReplayOptions, replay_plugin
from suite.continual.skd import SKDPlugin
from suite.continual.strategy import add_to_optimizer
from suite.continual.teacher import TeacherPlugin, frozen_copy, frozen_from_state
from suite.continual.transcript import transcript_mask


class LossWeight(Options):
    weight: float = Field(1.0, ge=0)
    temperature: float = Field(0.1, gt=0)
    variant: Variant = Field(
        "infonce", description="infonce (the paper's) or dcl (decoupled: the positives removed from the denominator, losses/dcl.py)"
    )


class CoconutOptions(Options):
    """Replay + NSPT (rehearsal samples) + MM (new samples), optionally + SKD (weight > 0)."""

    replay: ReplayOptions = Field(default_factory=ReplayOptions)
    nspt: LossWeight = Field(default_factory=lambda: LossWeight(weight=1.0, temperature=0.1))
    mm: LossWeight = Field(default_factory=lambda: LossWeight(weight=0.1, temperature=0.1))
    skd: KDWeight = Field(default_factory=lambda: KDWeight(weight=0.0))
    proj_dim: int | None = Field(None, ge=2, description="output size of the projection heads (default: max(64, d_model / 2))")


def default_proj_dim(d_model: int) -> int:
    """Output size of the heads when the spec gives none: 64, 64, 128, 256 for the tiny, small, base, large presets."""
    return max(64, d_model // 2)


class CoconutHeads(nn.Module):
    """COCONUT's projections on top of the model: ``nspt`` (g) on the pooled audio, ``mm_audio`` (g_a) and ``mm_text`` (g_t)."""

    def __init__(self, d_model: int, proj_dim: int):
        super().__init__()
        self.nspt = ProjectionHead(d_model, d_model, proj_dim)
        self.mm_audio = ProjectionHead(d_model, d_model, proj_dim)
        self.mm_text = ProjectionHead(d_model, d_model, proj_dim)


def transcript_embedding(embedding: nn.Embedding, tokens: torch.Tensor, pad_id: int) -> torch.Tensor:
    """e_j of the MM loss: the mean decoder token embedding over the transcript words of each target."""
    mask = transcript_mask(tokens, pad_id).unsqueeze(-1).to(embedding.weight.dtype)
    return (embedding(tokens) * mask).sum(1) / mask.sum(1).clamp(min=1.0)


class CoconutPlugin(TeacherPlugin):
    """NSPT (rehearsal anchors, frozen teacher) + MM (new samples) for ``Seq2SeqTemplate``.

    The plugin owns its projection heads: they join the strategy's optimizer before training (a
    parameter group of their own, which Avalanche's ``make_optimizer`` keeps) and are frozen
    alongside the model as the teacher's heads at the end of each experience.
    """

    def __init__(
        self,
        heads: CoconutHeads,
        nspt_weight: float = 1.0,
        nspt_temperature: float = 0.1,
        mm_weight: float = 0.1,
        mm_temperature: float = 0.1,
        nspt_variant: Variant = "infonce",
        mm_variant: Variant = "infonce",
    ):
        super().__init__()
        self.heads = heads
        self.teacher_heads: CoconutHeads | None = None
        self.nspt_weight, self.nspt_temperature, self.nspt_variant = nspt_weight, nspt_temperature, nspt_variant
        self.mm_weight, self.mm_temperature, self.mm_variant = mm_weight, mm_temperature, mm_variant

    def before_training(self, strategy: Any, **kwargs: Any) -> None:
        """Before Avalanche (re)makes the optimizer for the experience: the heads train, and a resumed optimizer state fits."""
        add_to_optimizer(strategy.optimizer, self.heads)

    def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        super().after_training_exp(strategy, **kwargs)
        self.teacher_heads = frozen_copy(self.heads)

    def state_dict(self) -> dict[str, Any]:
        teacher_heads = self.teacher_heads.state_dict() if self.teacher_heads is not None else None
        return {**super().state_dict(), "heads": self.heads.state_dict(), "teacher_heads": teacher_heads}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.heads.load_state_dict(state["heads"])
        self.teacher_heads = frozen_from_state(self.heads, state["teacher_heads"]) if state["teacher_heads"] is not None else None

    def before_backward(self, strategy: Any, **kwargs: Any) -> None:
        pooled, labels, rehearsal = strategy.mb_pooled, strategy.mb_y, strategy.rehearsal_mask
        if self.nspt_weight and self.active(strategy):
            strategy.add_loss("nspt", self.nspt(strategy, pooled, labels, rehearsal), self.nspt_weight)
        if self.mm_weight and strategy.mb_has_new:
            new = strategy.mb_new_index
            strategy.add_loss("mm", self.mm(strategy, pooled[new], labels[new], strategy.mb_tokens[new]), self.mm_weight)

    def nspt(self, strategy: Any, pooled: torch.Tensor, labels: torch.Tensor, rehearsal: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            index = strategy.mb_rehearsal_index
            memory, mask = self.teacher.encode(strategy.mb_x[index], strategy.mb_x_lens[index])
            teacher_z = self.teacher_heads.nspt(self.teacher.pooled(memory, mask))
        student_z = self.heads.nspt(pooled)
        return nspt_loss(student_z, teacher_z, labels, rehearsal, self.nspt_temperature, self.nspt_variant)

    def mm(self, strategy: Any, pooled_new: torch.Tensor, labels_new: torch.Tensor, tokens_new: torch.Tensor) -> torch.Tensor:
        audio = self.heads.mm_audio(pooled_new)
        text = self.heads.mm_text(transcript_embedding(strategy.model.embedding, tokens_new, strategy.pad_id))
        return mm_loss(audio, text, labels_new, self.mm_temperature, self.mm_variant)


def make_plugins(options: CoconutOptions, setup: MethodSetup) -> list[Any]:
    model = setup.model
    with torch.random.fork_rng(devices=[]):  # heads from their own draws: the run's data order stays the replay baseline's
        torch.manual_seed(setup.seed)
        heads = CoconutHeads(model.d_model, options.proj_dim or default_proj_dim(model.d_model))
    heads.to(next(model.parameters()).device)
    plugins: list[Any] = [
        replay_plugin(options.replay, setup),
        CoconutPlugin(
            heads,
            options.nspt.weight,
            options.nspt.temperature,
            options.mm.weight,
            options.mm.temperature,
            nspt_variant=options.nspt.variant,
            mm_variant=options.mm.variant,
        ),
    ]
    if options.skd.weight > 0:
        plugins.append(SKDPlugin(options.skd.weight))
    return plugins


COCONUT = continual_method("coconut", CoconutOptions, make_plugins, "replay + NSPT + multimodal audio-text contrastive loss (COCONUT)")
