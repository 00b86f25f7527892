"""Spec options of the continual SLU model and methods (validated key by key, unknown keys rejected)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from suite.api import Options


class SLUModelOptions(Options):
    """Model size: a preset, with any explicit key taking precedence over it."""

    preset: Literal["tiny", "small", "base", "large"] = "small"
    d_model: int | None = Field(None, ge=8)
    num_heads: int | None = Field(None, ge=1)
    enc_layers: int | None = Field(None, ge=1)
    dec_layers: int | None = Field(None, ge=1)
    ff_dim: int | None = Field(None, ge=8)
    proj_dim: int | None = Field(None, ge=2)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    encoder: Literal["transformer", "conformer"] = "transformer"
    conv_channels: int = Field(32, ge=1)
    global_conditioning: bool = Field(True, description="add the pooled utterance embedding to every decoder input")


class ContinualTrain(Options):
    """The ``train`` section shared by every continual method."""

    epochs: int = Field(4, ge=1, description="epochs per experience (joint: over all the data)")
    batch_size: int = Field(32, ge=1, description="new samples per batch (replay adds its own)")
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    intent_weight: float = Field(1.0, gt=0, description="weight of the intent token in the token cross-entropy (1 = plain mean)")
    grad_clip: float | None = Field(5.0, gt=0)
    eval_batch_size: int = Field(128, ge=1)
    max_decode_len: int = Field(32, ge=2)
    eval_future: bool = Field(False, description="also evaluate experiences not trained yet (full matrix)")
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    num_threads: int | None = Field(None, ge=1, description="torch threads; 1 on a shared CPU (2 OpenMP threads on 2 busy cores can stall)")
    checkpoint: bool = True
    echo: bool = Field(True, description="print one line per experience")


class ReplayOptions(Options):
    """Rehearsal buffer: ``size`` a count (int) or a fraction of the training set (float < 1)."""

    size: int | float = 200
    policy: Literal["reservoir", "class_balanced", "herding"] = "reservoir"
    batch_size_mem: int | None = Field(None, ge=1, description="rehearsal samples per batch (default: train.batch_size)")

    @field_validator("size")
    @classmethod
    def _count_or_fraction(cls, size: int | float) -> int | float:
        if isinstance(size, float) and not 0.0 < size < 1.0:
            raise ValueError("a fractional buffer size must lie in (0, 1); use an integer for a count")
        if isinstance(size, int) and size < 1:
            raise ValueError("the buffer must hold at least one sample")
        return size


class LossWeight(Options):
    weight: float = Field(1.0, ge=0)
    temperature: float = Field(0.1, gt=0)


class KDWeight(Options):
    weight: float = Field(1.0, ge=0)


class FinetuneOptions(Options):
    """Plain fine-tuning, experience after experience (the lower bound)."""


class JointOptions(Options):
    """All experiences at once (the upper bound)."""


class ReplayMethodOptions(Options):
    replay: ReplayOptions = Field(default_factory=ReplayOptions)


class EWCOptions(Options):
    ewc_lambda: float = Field(10000.0, ge=0)
    mode: Literal["separate", "online"] = "separate"
    decay_factor: float | None = Field(None, ge=0, le=1)


class LwFOptions(Options):
    alpha: float = Field(1.0, ge=0)
    temperature: float = Field(2.0, gt=0)


class AKDOptions(Options):
    replay: ReplayOptions = Field(default_factory=ReplayOptions)
    akd: KDWeight = Field(default_factory=KDWeight)


class SKDOptions(Options):
    replay: ReplayOptions = Field(default_factory=ReplayOptions)
    skd: KDWeight = Field(default_factory=KDWeight)


class CoconutOptions(Options):
    """Replay + NSPT (rehearsal samples) + MM (new samples), optionally + SKD (weight > 0)."""

    replay: ReplayOptions = Field(default_factory=ReplayOptions)
    nspt: LossWeight = Field(default_factory=lambda: LossWeight(weight=1.0, temperature=0.1))
    mm: LossWeight = Field(default_factory=lambda: LossWeight(weight=0.1, temperature=0.1))
    skd: KDWeight = Field(default_factory=lambda: KDWeight(weight=0.0))
