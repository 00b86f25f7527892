"""Memory Aware Synapses for a seq2seq model, on Avalanche's ``MASPlugin``.

MAS weighs each parameter by how much the network's output moves when the parameter
does: the mean absolute gradient of the squared L2 norm of the output, over the
experience's data, with no labels. Avalanche's ``_get_importance`` calls ``model(x)`` and
takes the norm over a vector of class logits per sample; the seq2seq model's output is one
logit vector per target token. Here the output is the decoder's teacher-forced logits, and
its squared L2 norm is taken per token and averaged over each sequence's non-pad tokens
(then over the batch, as Avalanche averages over samples). Batches come from the scenario's
``collate_fn``; the model runs in training mode, as in Avalanche (and FACIL, which it follows).

Kept from Avalanche: the importance update across experiences (``alpha`` times the old plus
``1 - alpha`` times the new), the anchors (the weights at the end of each experience) and the
penalty ``sum_k imp_k (theta_k - theta*_k)^2``, here the named loss term ``mas`` weighted by
``lambda_reg``. Resumable: anchors and importances are the plugin's ``state_dict``.
"""

from __future__ import annotations

from typing import Any

import torch
from avalanche.training.plugins import MASPlugin
from avalanche.training.utils import ParamData, zerolike_params_dict
from pydantic import Field
from torch.utils.data import DataLoader

from suite.api import Options
from suite.continual.entries import MethodSetup, continual_method
from suite.continual.param_tables import move_tables, table_from_state, table_state


class MASOptions(Options):
    lambda_reg: float = Field(1.0, ge=0, description="weight of the MAS penalty")
    alpha: float = Field(0.5, ge=0, le=1, description="share of the previous importance kept at each update")


def output_sq_norm(model: torch.nn.Module, batch: Any, pad_id: int) -> torch.Tensor:
    """MAS's objective on a seq2seq model: squared L2 norm of each token's teacher-forced logits, mean over tokens, then samples."""
    x, x_lens, tokens = batch[0], batch[2], batch[3]
    logits = model(x, x_lens, tokens[:, :-1])
    valid = (tokens[:, 1:] != pad_id).to(logits.dtype)
    per_sequence = (logits.pow(2).sum(-1) * valid).sum(1) / valid.sum(1).clamp(min=1.0)
    return per_sequence.mean()


class Seq2SeqMASPlugin(MASPlugin):
    def __init__(self, collate_fn: Any, pad_id: int, lambda_reg: float = 1.0, alpha: float = 0.5):
        super().__init__(lambda_reg=lambda_reg, alpha=alpha)
        self.collate_fn = collate_fn
        self.pad_id = pad_id

    def _get_importance(self, strategy: Any) -> dict[str, ParamData]:
        """Avalanche's estimate (mean absolute gradient per batch) of the seq2seq output norm ``output_sq_norm``."""
        model = strategy.model
        importance = dict(zerolike_params_dict(model))
        model.train()
        loader = DataLoader(strategy.experience.dataset, batch_size=strategy.train_mb_size, collate_fn=self.collate_fn)
        for batch in loader:
            batch = [part.to(strategy.device) for part in batch]
            strategy.optimizer.zero_grad()
            output_sq_norm(model, batch, self.pad_id).backward()
            for name, parameter in model.named_parameters():
                if parameter.requires_grad and parameter.grad is not None:
                    importance[name].data += parameter.grad.abs()
        for value in importance.values():
            value.data /= float(len(loader))
        strategy.optimizer.zero_grad()
        return importance

    def before_training(self, strategy: Any, **kwargs: Any) -> None:
        move_tables(strategy.device, self.params, self.importance)

    def before_backward(self, strategy: Any, **kwargs: Any) -> None:
        """Avalanche's penalty as the named term ``mas`` (before ``lambda_reg``)."""
        if strategy.clock.train_exp_counter == 0:
            return
        penalty = sum(
            (self.importance[name].data * (parameter - self.params[name].data).pow(2)).sum()
            for name, parameter in strategy.model.named_parameters()
            if name in self.importance
        )
        strategy.add_loss("mas", penalty, self._lambda)

    def state_dict(self) -> dict[str, Any]:
        return {"params": table_state(self.params), "importance": table_state(self.importance)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.params = table_from_state(state["params"])
        self.importance = table_from_state(state["importance"])


def make_plugins(options: MASOptions, setup: MethodSetup) -> list[Any]:
    scenario = setup.scenario
    return [Seq2SeqMASPlugin(scenario.collate_fn, scenario.tokenizer.pad_id, options.lambda_reg, options.alpha)]


MAS = continual_method(
    "mas", MASOptions, make_plugins, "memory aware synapses: output-sensitivity importances, quadratic penalty (Avalanche)"
)
