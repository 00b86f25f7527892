"""RWalk (Riemannian Walk) for a seq2seq model, on Avalanche's ``RWalkPlugin``.

RWalk combines an online Fisher (EWC++: squared gradients, a moving average over
iterations) with a path-integral score (how much each parameter's movement lowered the
loss, as in SI), both normalized to [0, 1] at the end of each experience; the penalty keeps
parameters near their end-of-experience values in proportion to the sum. Avalanche's plugin
takes its per-iteration gradient from ``strategy._criterion(model(x), y)`` on class targets;
here it is the seq2seq token loss (``suite.continual.strategy.sequence_loss``, with the run's
intent weight) of the same batch, in eval mode as in Avalanche. Avalanche leaves the model in
eval mode after that extra pass, so the training step itself would run without dropout; here
the model's mode is put back.

Kept from Avalanche: the score and importance updates every ``delta_t`` iterations, the
normalization (guarded: a table with no positive value adds nothing instead of NaN) and the
penalty ``sum_k p_k (theta_k - theta*_k)^2``, here the named loss term ``rwalk`` weighted by
``ewc_lambda``. Resumable: every table it carries across iterations is
the plugin's ``state_dict``, and the reset at the start of training is skipped when a run
resumes within an experience.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from avalanche.training.plugins import RWalkPlugin
from avalanche.training.utils import ParamData, copy_params_dict, zerolike_params_dict
from pydantic import Field

from suite.api import Options
from suite.continual.entries import MethodSetup, continual_method
from suite.continual.param_tables import move_tables, table_from_state, table_state
from suite.continual.strategy import sequence_loss

TABLES = (
    "checkpoint_params",
    "checkpoint_loss",
    "checkpoint_scores",
    "iter_importance",
    "exp_scores",
    "exp_params",
    "exp_importance",
    "exp_penalties",
)
"""The plugin's per-parameter tables that outlive an iteration (``iter_grad``/``iter_params`` are remade every iteration)."""


class RWalkOptions(Options):
    ewc_lambda: float = Field(0.1, ge=0, description="weight of the RWalk penalty")
    ewc_alpha: float = Field(0.9, ge=0, le=1, description="moving-average factor of the online Fisher (EWC++)")
    delta_t: int = Field(10, ge=1, description="iterations between score updates")


class Seq2SeqRWalkPlugin(RWalkPlugin):
    def __init__(self, pad_id: int, ewc_lambda: float = 0.1, ewc_alpha: float = 0.9, delta_t: int = 10):
        super().__init__(ewc_lambda=ewc_lambda, ewc_alpha=ewc_alpha, delta_t=delta_t)
        self.pad_id = pad_id
        self.within_experience = False

    def _update_grad(self, strategy: Any) -> None:
        """The gradient of the seq2seq loss on the current batch, without penalties, in eval mode; the mode is restored."""
        model = strategy.model
        was_training = model.training
        model.eval()
        strategy.optimizer.zero_grad()
        sequence_loss(model, strategy.mbatch, self.pad_id, strategy.intent_weight).backward()
        self.iter_grad = copy_params_dict(model, copy_grad=True)
        model.train(was_training)

    def before_training(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        move_tables(strategy.device, *(getattr(self, name) for name in TABLES))
        if not self.within_experience:  # else resumed within an experience: the restored tables are its running state
            super().before_training(strategy, *args, **kwargs)

    def before_training_exp(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self.within_experience = True

    def after_training_exp(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        """Avalanche's end of experience, with the normalization guarded against an all-zero table.

        Avalanche divides the scores by their maximum, which is zero when the experience had fewer
        than ``delta_t`` iterations (no score update) or when no score is positive: NaN penalties.
        Here a table whose maximum is not positive adds nothing to the penalties.
        """
        self.exp_importance = self.iter_importance
        self.exp_params = copy_params_dict(strategy.model)
        if self.exp_scores is None:
            self.exp_scores = self.checkpoint_scores
        else:
            self.exp_scores = {
                name: ParamData(name, device=score.device, init_tensor=0.5 * (self.exp_scores[name].data + score.data))
                for name, score in self.checkpoint_scores.items()
                if name in self.exp_scores
            }
        max_score = max(score.data.max() for score in self.exp_scores.values())
        max_importance = max(importance.data.max() for importance in self.exp_importance.values())
        self.exp_penalties = {}
        for name, score in self.exp_scores.items():
            if name in self.exp_importance:
                importance = self.exp_importance[name].data
                penalty = importance / max_importance if max_importance > 0 else torch.zeros_like(importance)
                if max_score > 0:
                    penalty = penalty + F.relu(score.data) / max_score
                self.exp_penalties[name] = ParamData(name, device=importance.device, init_tensor=penalty)
        self.checkpoint_scores = zerolike_params_dict(strategy.model)
        self.within_experience = False

    def before_backward(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        """Avalanche's penalty as the named term ``rwalk`` (before ``ewc_lambda``)."""
        if strategy.clock.train_exp_counter == 0:
            return
        penalty = sum(
            (self.exp_penalties[name].data * (parameter - self.exp_params[name].data).pow(2)).sum()
            for name, parameter in strategy.model.named_parameters()
            if name in self.exp_penalties
        )
        strategy.add_loss("rwalk", penalty, self.ewc_lambda)

    def state_dict(self) -> dict[str, Any]:
        return {"within_experience": self.within_experience, **{name: table_state(getattr(self, name)) for name in TABLES}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.within_experience = state["within_experience"]
        for name in TABLES:
            setattr(self, name, table_from_state(state[name]))


def make_plugins(options: RWalkOptions, setup: MethodSetup) -> list[Any]:
    return [Seq2SeqRWalkPlugin(setup.scenario.tokenizer.pad_id, options.ewc_lambda, options.ewc_alpha, options.delta_t)]


RWALK = continual_method(
    "rwalk", RWalkOptions, make_plugins, "Riemannian walk: online Fisher + path-integral scores, quadratic penalty (Avalanche)"
)
