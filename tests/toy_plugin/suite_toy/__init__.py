"""A third-party plugin distribution used by the foundation's tests (family "toy").

It is deliberately not part of the product: the tests put it on the path as an installed
distribution with entry points, the way ``pip install suite-toy`` would.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import Field

from suite.api import MethodEntry, ModelEntry, Options, ScenarioEntry
from suite.errors import DataError


class NumbersOptions(Options):
    size: int = Field(32, ge=1, le=10_000)
    noise: float = Field(0.1, ge=0.0)
    data_file: str | None = None


class LinearOptions(Options):
    width: int = Field(4, ge=1, le=64)


class FitOptions(Options):
    steps: int = Field(5, ge=1, le=1000)
    fail_at_step: int | None = None
    interrupt_at_step: int | None = None


class FitTrain(Options):
    lr: float = Field(0.1, gt=0.0, le=10.0)


def build_numbers(options: NumbersOptions, context):
    rng = np.random.default_rng(context.seed)
    x = rng.normal(size=(options.size, 4))
    y = x @ np.array([1.0, -2.0, 0.5, 3.0]) + options.noise * rng.normal(size=options.size)
    return x, y


def check_numbers(options: NumbersOptions) -> None:
    if options.data_file and not Path(options.data_file).is_file():
        raise DataError(f"toy data file {options.data_file} not found")


def build_linear(options: LinearOptions, rng: np.random.Generator):
    return rng.normal(scale=0.1, size=options.width)


def fit(ctx) -> dict[str, float]:
    """Gradient descent on a least-squares problem, logging the loss at every step."""
    x, y = ctx.build_scenario()
    weights = ctx.build_model(np.random.default_rng(ctx.seed))
    loss = float("nan")
    for step in range(ctx.method_options.steps):
        if step == ctx.method_options.fail_at_step:
            raise RuntimeError(f"toy method failed at step {step}")
        if step == ctx.method_options.interrupt_at_step:
            raise KeyboardInterrupt
        residual = x @ weights - y
        loss = float(np.mean(residual**2))
        weights = weights - ctx.train_options.lr * 2 * x.T @ residual / len(y)
        ctx.tracker.log_metrics({"loss": loss}, step=step)
    return {"final_loss": loss, "weight_norm": float(np.linalg.norm(weights))}


NUMBERS = ScenarioEntry(
    name="toy-numbers", family="toy", options=NumbersOptions, build=build_numbers, check=check_numbers, description="random regression data"
)
LINEAR = ModelEntry(name="toy-linear", family="toy", options=LinearOptions, build=build_linear, description="a weight vector")
FIT = MethodEntry(name="toy-fit", family="toy", options=FitOptions, train_options=FitTrain, run=fit, description="gradient descent")
OTHER = ScenarioEntry(name="toy-other", family="other", options=NumbersOptions, build=build_numbers)
NOT_A_PLUGIN = {"name": "oops"}
