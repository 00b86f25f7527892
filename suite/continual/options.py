"""Spec options shared by the continual family: the SLU model, the ``train`` section, a distillation weight.

Each method's own options live in its file (``replay.py``, ``coconut.py``, ...). Validated key by
key, unknown keys rejected.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from models.slu_seq2seq import DEFAULT_PRESET, DEFAULTS, ENCODERS, PRESETS
from suite.api import Options
from suite.devices import device_name


class SLUModelOptions(Options):
    """Model size: a preset, with any explicit key taking precedence over it.

    Sizes and defaults come from the model's own tables (``models/slu_seq2seq.py``: ``PRESETS``,
    ``DEFAULTS``); a size left at None is the preset's.
    """

    preset: Literal[tuple(PRESETS)] = DEFAULT_PRESET  # type: ignore[valid-type]
    d_model: int | None = Field(None, ge=8, description="default: the preset's")
    num_heads: int | None = Field(None, ge=1, description="default: the preset's")
    enc_layers: int | None = Field(None, ge=1, description="default: the preset's")
    dec_layers: int | None = Field(None, ge=1, description="default: the preset's")
    ff_dim: int | None = Field(None, ge=8, description="default: the preset's")
    dropout: float = Field(DEFAULTS["dropout"], ge=0.0, lt=1.0)
    encoder: Literal[ENCODERS] = DEFAULTS["encoder"]  # type: ignore[valid-type]
    conv_channels: int = Field(DEFAULTS["conv_channels"], ge=1)
    global_conditioning: bool = Field(
        DEFAULTS["global_conditioning"], description="add the pooled utterance embedding to every decoder input"
    )


class ContinualTrain(Options):
    """The ``train`` section shared by every continual method."""

    epochs: int = Field(4, ge=1, description="epochs per experience (joint: over all the data)")
    batch_size: int = Field(32, ge=1, description="new samples per batch (replay adds its own)")
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    intent_weight: float = Field(1.0, gt=0, description="weight of the intent token in the token cross-entropy (1 = plain mean)")
    grad_clip: float | None = Field(5.0, gt=0, description="gradient norm limit (null: no clipping)")
    grad_clip_on: Literal["total_loss", "seq2seq_loss"] = Field(
        "total_loss",
        description="the gradient grad_clip bounds: the total loss's, or the seq2seq loss's alone with the auxiliary "
        "losses' gradients (NSPT, MM, distillation) added unclipped after it",
    )
    eval_batch_size: int = Field(128, ge=1)
    max_decode_len: int = Field(32, ge=2)
    eval_future: bool = Field(False, description="also evaluate experiences not trained yet (full matrix)")
    device: str = Field("cpu", description="cpu, cuda, cuda:N or auto (cuda when available): suite.devices")
    _device = field_validator("device")(device_name)
    num_threads: int | None = Field(None, ge=1, description="torch threads; 1 on a shared CPU (2 OpenMP threads on 2 busy cores can stall)")
    checkpoint: bool = Field(True, description="log the final model (MLflow pytorch flavor, tokenizer inside)")
    echo: bool = Field(True, description="print one line per experience")


class KDWeight(Options):
    """The weight of a distillation term (AKD, SKD, COCONUT's optional SKD)."""

    weight: float = Field(1.0, ge=0)
