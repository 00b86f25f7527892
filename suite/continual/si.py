"""Synaptic Intelligence for a seq2seq model, on Avalanche's ``SynapticIntelligencePlugin``.

SI needs no classifier: each parameter's importance is the path integral of its gradient
along the training trajectory (the gradient times the parameter's step, summed over the
experience's iterations, divided by the squared total change), and the penalty keeps the
important parameters near their end-of-experience values. Avalanche's plugin reads only
``strategy.model``'s parameters and gradients, so on the seq2seq model the trajectory is the
token loss's (plus the penalty's, as in Avalanche). Kept from Avalanche: its tables, its
importance (``c = 1``, clipped at 0.001 from above) and its penalty
``lambda/2 sum_k imp_k (theta_k - theta*_k)^2``. Changed:

- the weights are copied: Avalanche's ``extract_weights`` stores ``param.detach().cpu().flatten()``,
  which on the CPU is a view of the live parameter, so every "old" weight equals the new one,
  the trajectory stays zero and the penalty with it (seen here); the hooks below do what
  Avalanche's do with copies;
- the penalty goes through the template as the named loss term ``si`` (the penalty before
  ``si_lambda``), from the second experience on (in the first every importance is zero);
- resumable: the tables (anchors, importances, the trajectory so far) are the plugin's
  ``state_dict``, and the experience-start bookkeeping (anchor weights, trajectory reset) runs
  once per experience, not again when a run resumes within it.
"""

from __future__ import annotations

from typing import Any

import torch
from avalanche.training.plugins import SynapticIntelligencePlugin
from pydantic import Field

from suite.api import Options
from suite.continual.entries import MethodSetup, continual_method
from suite.continual.param_tables import table_from_state, table_state

IMPORTANCE_CLIP = 0.001
"""Avalanche's upper bound on an importance (``update_ewc_data``'s ``clip_to``)."""


class SIOptions(Options):
    si_lambda: float = Field(1.0, ge=0, description="weight of the SI penalty")
    eps: float = Field(1e-7, gt=0, description="damping of the importance's denominator (xi in the paper)")


class Seq2SeqSIPlugin(SynapticIntelligencePlugin):
    def __init__(self, si_lambda: float, eps: float = 1e-7):
        super().__init__(si_lambda, eps=eps)
        self.within_experience = False

    @torch.no_grad()
    def copy_weights(self, model: torch.nn.Module, target: dict[str, Any]) -> None:
        """Avalanche's ``extract_weights``, but a copy (flat, on the CPU) rather than a view of the parameter."""
        for name, param in self.allowed_parameters(model, self.excluded_parameters):
            target[name].data = param.detach().flatten().to("cpu", copy=True)

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        """Avalanche's experience start (tables for new parameters, anchor weights, trajectory reset), once per experience."""
        if not self.within_experience:  # else resumed within it: the restored tables already hold its start
            self.create_syn_data(strategy.model, self.ewc_data, self.syn_data, self.excluded_parameters)
            self.copy_weights(strategy.model, self.ewc_data[0])
            for trajectory in self.syn_data["trajectory"].values():
                trajectory.data.fill_(0.0)
        self.within_experience = True

    def before_training_iteration(self, strategy: Any, **kwargs: Any) -> None:
        self.copy_weights(strategy.model, self.syn_data["old_theta"])

    @torch.no_grad()
    def after_training_iteration(self, strategy: Any, **kwargs: Any) -> None:
        """The path integral's step: gradient times the parameter's change."""
        syn = self.syn_data
        self.copy_weights(strategy.model, syn["new_theta"])
        self.extract_grad(strategy.model, syn["grad"], self.excluded_parameters)
        for name, trajectory in syn["trajectory"].items():
            trajectory.data += syn["grad"][name].data * (syn["new_theta"][name].data - syn["old_theta"][name].data)

    @torch.no_grad()
    def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        """Avalanche's ``update_ewc_data``: the importances from the trajectory, the anchors at the experience's end weights."""
        syn, (anchors, importances) = self.syn_data, self.ewc_data
        self.copy_weights(strategy.model, syn["new_theta"])
        for name, cumulative in syn["cum_trajectory"].items():
            change = syn["new_theta"][name].data - anchors[name].data
            cumulative.data += syn["trajectory"][name].data / (change.pow(2) + self.eps)
            importances[name].data = torch.clamp(-cumulative.data, max=IMPORTANCE_CLIP)
            anchors[name].data = syn["new_theta"][name].data.clone()
        self.within_experience = False

    def before_backward(self, strategy: Any, **kwargs: Any) -> None:
        """Avalanche's penalty as the named term ``si`` (``compute_ewc_loss`` at lambda 1), weighted by ``si_lambda``."""
        if strategy.clock.train_exp_counter == 0:
            return
        penalty = self.compute_ewc_loss(strategy.model, self.ewc_data, self.excluded_parameters, device=strategy.device, lambd=1.0)
        if penalty is not None:
            strategy.add_loss("si", penalty, self.si_lambda[-1])

    def state_dict(self) -> dict[str, Any]:
        anchors, importances = self.ewc_data
        return {
            "within_experience": self.within_experience,
            "anchors": table_state(anchors),
            "importances": table_state(importances),
            "syn_data": {key: table_state(table) for key, table in self.syn_data.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.within_experience = state["within_experience"]
        self.ewc_data = (table_from_state(state["anchors"]), table_from_state(state["importances"]))
        self.syn_data = {key: table_from_state(table) for key, table in state["syn_data"].items()}


def make_plugins(options: SIOptions, setup: MethodSetup) -> list[Any]:
    return [Seq2SeqSIPlugin(options.si_lambda, options.eps)]


SI = continual_method("si", SIOptions, make_plugins, "synaptic intelligence: path-integral importances, quadratic penalty (Avalanche)")
