"""EWC for a seq2seq model, on Avalanche's ``EWCPlugin``.

Avalanche's penalty is kept as is; only the Fisher estimate changes, because Avalanche's
``compute_importances`` calls ``model(x)`` against class targets. Here the importances are
the squared gradients of the seq2seq token loss, averaged over the experience's batches.
"""

from __future__ import annotations

from typing import Any, Literal

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
