"""Registry objects of the continual recommendation family, and how a method file declares its entry.

A method is one file (``finetune.py``, ``joint.py``, ``replay.py``, ``ader.py``): its options, a
``PeriodMethod`` subclass, and ``periodic_method(...)`` turning both into a ``MethodEntry``
that trains any model of the sequential family (``model_family``) on a ``recbole-periods``
scenario. Method names carry a ``rec-`` prefix where the continual SLU family has the same
idea (``rec-finetune``, ``rec-joint``, ``rec-replay``); ``ader`` is recommender-only.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Literal

from pydantic import Field

from models.mclrec import MCLRec
from scenarios.recsys.periods import FAMILY
from suite.api import MethodEntry, Options, RunContext
from suite.errors import SpecError
from suite.sequential.train_options import SequentialTrainOptions

MCLREC_DEFAULTS = MCLRec.default_config()


class PeriodTrainOptions(SequentialTrainOptions):
    """Training per period: ``epochs`` each, no early stopping (a deployed retrain has a fixed budget)."""

    epochs: int = Field(default=5, gt=0, description="epochs per period")
    meta_optimization: Literal["two-step", "three-step", "joint"] = Field(
        default=MCLREC_DEFAULTS["meta_optimization"], description="MCLRec-style models only: their meta-trainer's steps"
    )
    augmenter_learning_rate: float | None = Field(default=MCLREC_DEFAULTS["augmenter_learning_rate"], gt=0)


def periodic_method(name: str, options: type[Options], method_class: type, description: str) -> MethodEntry:
    """The registry entry of a continual recommendation method (see the module docstring)."""
    return MethodEntry(
        name=name,
        family=FAMILY,
        options=options,
        train_options=PeriodTrainOptions,
        run=partial(run_method, method_class=method_class),
        description=description,
        check=partial(check_point, method_class=method_class),
        curve_metric="avg_ndcg_at_10_seen",
        names_runs_after_model=True,
        model_family="sequential",
    )


def check_point(point: Any, method_class: type) -> None:
    """Pre-flight: a method that adds its own loss needs a model that RecBole's trainer trains (not MCLRec's meta-trainer)."""
    from suite.sequential.meta_trainer import MetaTrainer

    model_class, _ = point.model.build(point.model_options)
    if method_class.trains_with_its_own_loss and MetaTrainer.trains(model_class):
        raise SpecError(
            f"method '{point.method.name}' adds its own loss term, which MCLRec's meta-optimization does not take; "
            f"use model sasrec or a method without one (rec-finetune, rec-joint, rec-replay)"
        )


def run_method(ctx: RunContext, method_class: type) -> dict[str, float]:
    from suite.periodic.runner import run

    return run(ctx, method_class(ctx.method_options, ctx.seed))
