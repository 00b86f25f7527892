"""The spec's ``train`` section for RecBole runs, every string checked against its grammar.

RecBole ``eval``s config strings, so ``valid_metric``, ``metrics`` and ``device`` are
validated here, when the spec is read: a bad value is exit 2 naming the key, before any
MLflow run exists (``suite.sequential.recbole_strings`` holds the grammars).
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field, ValidationInfo, field_validator

from suite.api import Options
from suite.devices import device_name, resolve_device
from suite.sequential import recbole_strings


class SequentialTrainOptions(Options):
    """Leave-one-out, full ranking; early stopping on ``valid_metric`` (the authors of MCLRec use MRR@10)."""

    epochs: int = Field(default=50, gt=0)
    train_batch_size: int = Field(default=256, gt=0)
    eval_batch_size: int = Field(default=2048, gt=0)
    learning_rate: float = Field(default=0.001, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    stopping_step: int = Field(default=10, gt=0)
    metrics: list[str] = Field(
        default_factory=lambda: ["Hit", "NDCG"],
        min_length=1,
        description="RecBole ranking metrics computed at every k of topk; valid_metric's own metric is always computed too",
    )
    topk: list[int] = Field(default_factory=lambda: [5, 10, 20], min_length=1)
    valid_metric: str = Field(default="NDCG@10", description="early stopping and model selection: NAME@k of RecBole's ranking metrics")
    device: str = Field(default="cpu", description="cpu, cuda (the current CUDA device), cuda:N or auto: suite.devices")
    num_threads: int | None = Field(
        default=None, ge=1, description="torch threads; 1 on a shared CPU (2 OpenMP threads on 2 busy cores can stall)"
    )

    _device = field_validator("device")(device_name)

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, values: list[str]) -> list[str]:
        for value in values:
            try:
                recbole_strings.metric_name(value)
            except ValueError as error:
                raise ValueError(f"{value!r}: {error}") from None
        if len({value.lower() for value in values}) != len(values):
            raise ValueError(f"metrics listed twice: {values}")
        return values

    @field_validator("topk")
    @classmethod
    def _topk(cls, values: list[int]) -> list[int]:
        if any(k <= 0 for k in values) or len(set(values)) != len(values):
            raise ValueError(f"expected distinct positive cut-offs, got {values}")
        return values

    @field_validator("valid_metric")
    @classmethod
    def _valid_metric(cls, value: str, info: ValidationInfo) -> str:
        """``NAME@k`` of a ranking metric, with k one of ``topk`` (declared before, so validated first)."""
        _, k = recbole_strings.split_valid_metric(value)
        topk = info.data.get("topk")
        if k is not None and topk is not None and k not in topk:
            raise ValueError(f"the cut-off {k} is not in topk {topk}")
        return value

    def recbole_metrics(self) -> list[str]:
        """``metrics`` plus ``valid_metric``'s own metric when it is not listed (RecBole must compute it)."""
        name, _ = recbole_strings.split_valid_metric(self.valid_metric)
        listed = [value.lower() for value in self.metrics]
        return list(self.metrics) if name in listed else [*self.metrics, self.valid_metric.split("@")[0]]

    def torch_device(self) -> torch.device:
        return resolve_device(self.device)

    def recbole_device_keys(self) -> dict[str, Any]:
        """``use_gpu``/``gpu_id`` for RecBole's Config; the pipeline then sets ``config['device']`` to ``torch_device()``."""
        target = self.torch_device()
        if target.type == "cpu":
            return {"use_gpu": False, "gpu_id": ""}
        return {"use_gpu": True, "gpu_id": str(target.index or 0)}
