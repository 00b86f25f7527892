"""EWC for a seq2seq model, on Avalanche's ``EWCPlugin``.

Avalanche's penalty is kept as is; only the Fisher estimate changes, because Avalanche's
``compute_importances`` calls ``model(x)`` against class targets. Here the importances are
the squared gradients of the seq2seq token loss, averaged over the experience's batches.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Literal

import torch
from avalanche.training.plugins import EWCPlugin
from avalanche.training.utils import ParamData, zerolike_params_dict
from pydantic import Field
from torch.utils.data import DataLoader

from suite.api import Options
from suite.continual.entries import MethodSetup, continual_method
from suite.continual.strategy import sequence_loss


class EWCOptions(Options):
    ewc_lambda: float = Field(10000.0, ge=0)
    mode: Literal["separate", "online"] = "separate"
    decay_factor: float | None = Field(None, ge=0, le=1)


class Seq2SeqEWCPlugin(EWCPlugin):
    def __init__(self, ewc_lambda: float, collate_fn: Any, pad_id: int, mode: str = "separate", decay_factor: float | None = None):
        super().__init__(ewc_lambda, mode=mode, decay_factor=decay_factor)
        self.collate_fn = collate_fn
        self.pad_id = pad_id

    def before_backward(self, strategy: Any, **kwargs: Any) -> None:
        """Avalanche's penalty, added through the template so that it is a named loss term (``ewc``: the penalty before lambda)."""
        if strategy.clock.train_exp_counter == 0:
            return
        loss = strategy.loss
        strategy.loss = torch.zeros_like(loss)  # Avalanche adds ewc_lambda * penalty to it in place
        super().before_backward(strategy, **kwargs)
        weighted, strategy.loss = strategy.loss, loss
        logged = weighted / self.ewc_lambda if self.ewc_lambda else weighted
        strategy.add_loss("ewc", weighted, 1.0, logged=logged)

    def state_dict(self) -> dict[str, Any]:
        """The saved parameters and importances of every past experience, as tensors."""

        def tensors(table: dict[int, dict[str, ParamData]]) -> dict[int, dict[str, Any]]:
            return {int(exp): {name: data.data.clone() for name, data in params.items()} for exp, params in table.items()}

        return {"saved_params": tensors(self.saved_params), "importances": tensors(self.importances)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for attribute in ("saved_params", "importances"):
            table = defaultdict(dict)
            for exp, params in state[attribute].items():
                table[int(exp)] = {
                    name: ParamData(name, init_tensor=tensor.clone(), device=tensor.device) for name, tensor in params.items()
                }
            setattr(self, attribute, table)

    def compute_importances(self, model, criterion, optimizer, dataset, device, batch_size, num_workers=0) -> dict[str, ParamData]:
        model.eval()
        importances = zerolike_params_dict(model)
        loader = DataLoader(dataset, batch_size=batch_size, collate_fn=self.collate_fn, num_workers=num_workers)
        for batch in loader:
            batch = [part.to(device) for part in batch]
            optimizer.zero_grad()
            sequence_loss(model, batch, self.pad_id).backward()
            for (name, parameter), (name_imp, importance) in zip(model.named_parameters(), importances.items()):
                assert name == name_imp
                if parameter.grad is not None:
                    importance.data += parameter.grad.detach().pow(2)
        for importance in importances.values():
            importance.data /= float(len(loader))
        optimizer.zero_grad()
        model.train()
        return importances


def make_plugins(options: EWCOptions, setup: MethodSetup) -> list[Any]:
    scenario = setup.scenario
    return [Seq2SeqEWCPlugin(options.ewc_lambda, scenario.collate_fn, scenario.tokenizer.pad_id, options.mode, options.decay_factor)]


EWC = continual_method("ewc", EWCOptions, make_plugins, "elastic weight consolidation (Avalanche EWCPlugin, seq2seq Fisher)")
