"""A third-party plugin distribution used by the foundation's tests (family "toy").

It is deliberately not part of the product: the tests put it on the path as an installed
distribution with entry points, the way ``pip install suite-toy`` would. Its method resumes
the way any method should: it saves its state through ``ctx.checkpoints`` after every step
and continues from ``ctx.checkpoints.load()`` when ``suite resume`` restarts it.

``SUITE_TOY_PAUSE_AT_STEP=<n>`` (an environment variable, so the spec stays the same) makes
the method announce ``toy: paused at step <n>`` on stderr and wait there, for tests that
kill a run mid-way with a real signal; ``SUITE_TOY_PAUSE_SEED=<s>`` limits that to the run of seed
``s`` (the others of a parallel launch go on), and ``SUITE_TOY_RELEASE_FILE=<path>`` lets a paused
run go on once that file exists.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field

from suite.api import MethodEntry, ModelEntry, Options, ScenarioEntry
from suite.errors import DataError, SpecError
from suite.seeding import restore_rng_state, rng_state

PAUSE_ENV = "SUITE_TOY_PAUSE_AT_STEP"
PAUSE_SEED_ENV = "SUITE_TOY_PAUSE_SEED"
RELEASE_ENV = "SUITE_TOY_RELEASE_FILE"


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
    fail_with: Literal["runtime", "data"] = "runtime"
    """What ``fail_at_step`` raises: a RuntimeError, or a DataError (an input error found too late)."""
    batch_size: int | None = Field(None, ge=1)
    """Stochastic gradient steps on a batch drawn from torch's global generator (None: full batch)."""


class FitTrain(Options):
    lr: float = Field(0.1, gt=0.0, le=10.0)
    device: str = "cpu"
    """Unused by the toy; a string option, as RecBole's intervals and devices are."""


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


def check_fit(point) -> None:
    if point.method_options.batch_size and point.method_options.batch_size > point.scenario_options.size:
        raise SpecError(f"method.batch_size {point.method_options.batch_size} is larger than scenario.size {point.scenario_options.size}")


def fit(ctx) -> dict[str, float]:
    """Gradient descent on a least-squares problem, logging the loss at every step; resumable after any step."""
    x, y = ctx.build_scenario()
    weights = ctx.build_model(np.random.default_rng(ctx.seed))
    options = ctx.method_options
    start, loss = 0, float("nan")
    ctx.tracker.set_tags(
        {"toy.quiet": ctx.quiet, "toy.evaluation": ctx.evaluation, "toy.cuda_visible": os.environ.get("CUDA_VISIBLE_DEVICES", "")}
    )
    state = ctx.checkpoints.load()
    if state is not None:
        start, loss, weights = state["step"] + 1, float(state["loss"]), state["weights"].numpy()
        restore_rng_state(state["rng"])
    prefix = "valid." if ctx.evaluation == "valid" else ""  # as the continual methods name their evaluation metrics
    for step in range(start, options.steps):
        if step == options.fail_at_step:
            raise (DataError if options.fail_with == "data" else RuntimeError)(f"toy method failed at step {step}")
        if step == options.interrupt_at_step:
            raise KeyboardInterrupt
        rows = torch.randperm(len(y))[: options.batch_size].numpy() if options.batch_size else slice(None)
        residual = x[rows] @ weights - y[rows]
        loss = float(np.mean(residual**2))
        weights = weights - ctx.train_options.lr * 2 * x[rows].T @ residual / len(residual)
        ctx.tracker.log_metrics({f"{prefix}loss": loss}, step=step)
        ctx.checkpoints.save({"step": step, "loss": loss, "weights": torch.from_numpy(weights), "rng": rng_state()})
        _pause_if_asked(step, ctx.seed)
    return {f"{prefix}final_loss": loss, f"{prefix}weight_norm": float(np.linalg.norm(weights))}


def _pause_if_asked(step: int, seed: int) -> None:
    if os.environ.get(PAUSE_ENV) == str(step) and os.environ.get(PAUSE_SEED_ENV, str(seed)) == str(seed):
        print(f"toy: paused at step {step}", file=sys.stderr, flush=True)
        release = os.environ.get(RELEASE_ENV)
        while not (release and Path(release).exists()):
            time.sleep(0.1)


NUMBERS = ScenarioEntry(
    name="toy-numbers", family="toy", options=NumbersOptions, build=build_numbers, check=check_numbers, description="random regression data"
)
LINEAR = ModelEntry(name="toy-linear", family="toy", options=LinearOptions, build=build_linear, description="a weight vector")
FIT = MethodEntry(
    name="toy-fit",
    family="toy",
    options=FitOptions,
    train_options=FitTrain,
    run=fit,
    check=check_fit,
    curve_metric="loss",
    description="gradient descent",
)
FIT_BY_MODEL = MethodEntry(
    name="toy-fit-by-model",
    family="toy",
    options=FitOptions,
    train_options=FitTrain,
    run=fit,
    names_runs_after_model=True,
    description="gradient descent, runs named after the model",
)
OTHER = ScenarioEntry(name="toy-other", family="other", options=NumbersOptions, build=build_numbers)
NOT_A_PLUGIN = {"name": "oops"}
