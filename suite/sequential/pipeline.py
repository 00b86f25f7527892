"""RecBole's own pipeline, assembled by hand for one run, logged to MLflow, resumable.

``run_recbole``/``get_trainer`` look models up by name and write into the working
directory, so the suite builds the same steps itself (Config with every hyperparameter
explicit, init_seed, create_dataset, data_preparation, init_seed, model, FLOPs probe,
trainer) with the working directory switched to the run's own folder: RecBole's
``log_tensorboard/`` and ``saved/`` land there, never in the user's cwd. The steps and
their order are RecBole's ``run_recbole``, so a seed gives the same numbers as plain RecBole.

What RecBole would otherwise do to the process is scoped to its calls: its ``Config``
``eval``s config strings (every string passes ``guard_config`` first), reads ``sys.argv``
(it sees an empty command line) and sets ``CUDA_VISIBLE_DEVICES`` (put back; the device is
set explicitly); the pandas and torch FutureWarnings its code triggers are filtered around
those calls only.

A run saves a resume state into ``ctx.checkpoints`` after every epoch and, when the store
already holds one (``suite resume``), continues from it into the same MLflow run.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.data.transform import construct_transform
from recbole.utils import get_flops, init_seed

from suite.api import RunContext
from suite.devices import check_device
from suite.run_clock import RunClock
from suite.scenario_build import build_scenario
from suite.sequential.recbole_strings import guard_config
from suite.sequential.train_options import SequentialTrainOptions

EPOCH_VALID = "valid_epoch"
"""Prefix of the per-epoch validation curve (``valid_epoch.ndcg@10``, step = epoch). ``valid.*`` is the
summary of a tuning run (``ctx.evaluation == 'valid'``): the best epoch's metrics, one value each."""


@dataclass
class RecBoleRun:
    """Everything RecBole built for one run."""

    config: Config
    dataset: Any
    train_data: Any
    valid_data: Any
    test_data: Any
    model: Any
    trainer: Any
    flops: float | None = None
    kept: dict[str, int] | None = None
    """Users, items and interactions RecBole kept after its filters (read before its sequential
    data augmentation turns the interactions into one training sample per prefix)."""


def train_config(train: SequentialTrainOptions) -> dict[str, Any]:
    """The training/evaluation half of the RecBole config, from the spec's ``train`` section."""
    return {
        "epochs": train.epochs,
        "train_batch_size": train.train_batch_size,
        "eval_batch_size": train.eval_batch_size,
        "learner": "adam",
        "learning_rate": train.learning_rate,
        "weight_decay": train.weight_decay,
        "stopping_step": train.stopping_step,
        "eval_step": 1,
        "clip_grad_norm": None,
        "valid_metric": train.valid_metric,
        "metrics": train.recbole_metrics(),
        "topk": list(train.topk),
        "metric_decimal_place": 6,
        **train.recbole_device_keys(),
        "train_neg_sample_args": None,
        "show_progress": False,
        "log_wandb": False,
        "worker": 0,
        "shuffle": True,
        "reproducibility": True,
        "state": "WARNING",
    }


def config_dict_for(
    scenario_fragment: dict[str, Any],
    model_fragment: dict[str, Any],
    train: SequentialTrainOptions,
    seed: int,
    run_dir: Path,
    method_fragment: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Every key RecBole needs, explicit (custom model classes get no YAML defaults).

    Training trains with cross-entropy over all items (no negative sampling) unless the model
    asks for negatives: a pairwise (BPR) loss sets ``train_neg_sample_args`` in its fragment.
    A model that reads item features (S3Rec's attributes) adds their columns to the scenario's ``load_col``.
    """
    sampling = {"train_neg_sample_args": model_fragment["train_neg_sample_args"]} if "train_neg_sample_args" in model_fragment else {}
    return {
        **scenario_fragment,
        **model_fragment,
        **_load_col(scenario_fragment, model_fragment),
        **train_config(train),
        **sampling,
        **(method_fragment or {}),
        "seed": seed,
        "checkpoint_dir": str(Path(run_dir).resolve() / "saved"),
    }


def _load_col(scenario_fragment: dict[str, Any], model_fragment: dict[str, Any]) -> dict[str, Any]:
    """The scenario's columns plus the model's item columns (the item id first, as RecBole joins on it)."""
    wanted = model_fragment.get("load_col")
    if not wanted:
        return {}
    load_col = {table: list(columns) for table, columns in scenario_fragment.get("load_col", {}).items()}
    for table, columns in wanted.items():
        key = scenario_fragment.get("ITEM_ID_FIELD", "item_id") if table == "item" else None
        merged = load_col.setdefault(table, [key] if key else [])
        merged.extend(column for column in columns if column not in merged)
    return {"load_col": load_col}


@contextlib.contextmanager
def recbole_process_state() -> Iterator[None]:
    """RecBole's ``Config`` sees an empty command line, and its ``CUDA_VISIBLE_DEVICES`` is put back after.

    It parses ``sys.argv`` itself (``--key=value`` pairs are ``eval``ed; anything else is
    warned about: "command line args [...] will not be used in RecBole") and sets
    ``CUDA_VISIBLE_DEVICES`` to its ``gpu_id``, which would renumber the devices of every
    later run in the process.
    """
    argv, visible = sys.argv, os.environ.get("CUDA_VISIBLE_DEVICES")
    sys.argv = argv[:1]
    try:
        yield
    finally:
        sys.argv = argv
        if visible is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = visible


@contextlib.contextmanager
def recbole_warnings_filtered() -> Iterator[None]:
    """Hide the FutureWarnings RecBole 1.2.1's own code triggers (pandas' chained ``fillna``, ``torch.cuda.amp.GradScaler``).

    Scoped twice: to the calls this wraps, and to warnings raised from RecBole's modules.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"recbole\.data\.dataset\.")
        warnings.filterwarnings("ignore", message=r".*GradScaler", category=FutureWarning, module=r"recbole\.trainer\.")
        yield


def recbole_config(model_class: type, config_dict: dict[str, Any], device: torch.device | None = None) -> Config:
    """RecBole's ``Config`` from a checked dict (strings quoted), without touching argv or the environment."""
    guarded = guard_config(config_dict)
    with recbole_process_state():
        config = Config(model=model_class, dataset=config_dict["dataset"], config_dict=guarded)
    if device is not None:
        config["device"] = device
    return config


def build_run(
    model_class: type, config_dict: dict[str, Any], trainer_class: type, run_dir: Path, device: torch.device | None = None
) -> RecBoleRun:
    """RecBole's ``run_recbole`` steps up to the trainer, inside ``run_dir``."""
    with contextlib.chdir(run_dir), recbole_warnings_filtered():
        config = recbole_config(model_class, config_dict, device)
        init_seed(config["seed"], config["reproducibility"])
        dataset = create_dataset(config)
        kept = {"users": dataset.user_num - 1, "items": dataset.item_num - 1, "interactions": dataset.inter_num}
        train_data, valid_data, test_data = data_preparation(config, dataset)
        init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
        model = model_class(config, train_data._dataset).to(config["device"])
        flops = _flops(model, dataset, config)
        trainer = trainer_class(config, model)
    return RecBoleRun(config, dataset, train_data, valid_data, test_data, model, trainer, flops, kept)


def _flops(model: Any, dataset: Any, config: Config) -> float | None:
    """RecBole's FLOPs probe (one ``predict`` call); None for a model that scores full rankings only
    (RecBole's softmax-CPR models assert in ``predict``)."""
    try:
        return float(get_flops(model, dataset, config["device"], logging.getLogger(), construct_transform(config)))
    except (AssertionError, NotImplementedError):
        return None


def fit(run: RecBoleRun, run_dir: Path) -> dict[str, float]:
    """RecBole's fit (early stopping on the valid metric); the best epoch's validation metrics."""
    with contextlib.chdir(run_dir), recbole_warnings_filtered():
        _, best_valid = run.trainer.fit(run.train_data, run.valid_data, saved=True, show_progress=False)
    return {key: float(value) for key, value in (best_valid or {}).items()}


def evaluate_test(run: RecBoleRun, run_dir: Path) -> dict[str, float]:
    """The test split, scored by the best checkpoint."""
    with contextlib.chdir(run_dir), recbole_warnings_filtered():
        test = run.trainer.evaluate(run.test_data, load_best_model=True, show_progress=False)
    return {key: float(value) for key, value in test.items()}


class EpochLog:
    """Each epoch's losses and validation metrics: to MLflow (step = epoch) and, unless quiet, one line.

    The line is what RecBole's quick start reports, named after the run so sequential children
    tell apart: ``sasrec seed=1 epoch 3  train loss 6.8123  valid mrr@10 0.0412  (4.1 s)``.
    """

    def __init__(self, tracker: Any, valid_metric: str, quiet: bool, stream: TextIO | None = None, name: str = ""):
        self.tracker = tracker
        self.name = name
        self.valid_metric = valid_metric.lower()
        self.quiet = quiet
        self.stream = stream
        self.started = self.epoch_started = time.perf_counter()
        self.train_loss: float | None = None

    def __call__(self, kind: str, epoch: int, values: dict[str, float]) -> None:
        if kind == "train":
            self.train_loss = values.get("loss", values.get("loss_total"))
            metrics = {f"train.{key}": value for key, value in values.items()}
            metrics["train.elapsed_s"] = time.perf_counter() - self.started  # this process's (the run's in total: train_seconds)
        else:
            metrics = {f"{EPOCH_VALID}.{key}": value for key, value in values.items()}
        self.tracker.log_metrics(metrics, step=epoch)
        if kind == "valid" and not self.quiet:
            self._print(epoch, values.get(self.valid_metric))

    def _print(self, epoch: int, valid: float | None) -> None:
        now = time.perf_counter()
        loss = "" if self.train_loss is None else f"  train loss {self.train_loss:.4f}"
        score = "" if valid is None else f"  valid {self.valid_metric} {valid:.4f}"
        prefix = f"{self.name} " if self.name else ""
        print(f"{prefix}epoch {epoch:3d}{loss}{score}  ({now - self.epoch_started:.1f} s)", file=self.stream or sys.stderr, flush=True)
        self.epoch_started = now


def run_sequential(ctx: RunContext, trainer_class: type, method_fragment: dict[str, Any] | None = None) -> dict[str, float]:
    """One seed: build, train (or resume), evaluate; log to ``ctx.tracker``; return the summary metrics.

    ``ctx.evaluation == 'test'``: ``test.<metric>`` (best checkpoint), plus ``best_valid.*`` logged.
    ``ctx.evaluation == 'valid'`` (tuning): the test split is never evaluated; ``valid.<metric>``
    are the best epoch's validation metrics.
    """
    train: SequentialTrainOptions = ctx.train_options
    clock = RunClock()
    check_device(train.device)
    if train.num_threads:
        torch.set_num_threads(train.num_threads)
    scenario = build_scenario(ctx)
    model_class, model_fragment = ctx.model_entry.build(ctx.model_options)
    run_dir = Path(ctx.run_dir)
    config_dict = config_dict_for(scenario.config_fragment(), model_fragment, train, ctx.seed, run_dir, method_fragment)
    run = build_run(model_class, config_dict, trainer_class, run_dir, train.torch_device())
    run.trainer.run_clock = clock
    resumed = ctx.checkpoints.load(map_location=train.torch_device()) if ctx.checkpoints is not None else None
    if resumed is None:
        _log_inputs(ctx, run, scenario, config_dict)
    else:
        run.trainer.restore_resume_state(resumed, run.train_data, run.valid_data)
    run.trainer.resume_store = ctx.checkpoints
    name = "" if ctx.quiet else ctx.tracker.run_name()
    if not ctx.quiet:
        print(dataset_line(name, scenario.dataset.label, run.kept), file=sys.stderr, flush=True)
    run.trainer.epoch_listener = EpochLog(ctx.tracker, train.valid_metric, ctx.quiet, name=name)
    best_valid = fit(run, run_dir)
    if ctx.evaluation == "valid":
        summary = {f"valid.{key}": value for key, value in best_valid.items()}
        ctx.tracker.log_metrics(summary)
    else:
        summary = {f"test.{key}": value for key, value in evaluate_test(run, run_dir).items()}
        ctx.tracker.log_metrics({**summary, **{f"best_valid.{key}": value for key, value in best_valid.items()}})
    if (seconds := clock.seconds()) is not None:  # unknown after resuming a checkpoint from before the count
        ctx.tracker.log_metrics({"train_seconds": seconds})
    _log_best_model(ctx, run)
    return summary


def dataset_line(name: str, dataset: str, kept: dict[str, int] | None) -> str:
    """The counts RecBole's quick start opens with, once per run: ``sasrec seed=0: ml-100k: 943 users, 1,682 items, ...``."""
    counts = ", ".join(f"{value:,} {key}" for key, value in (kept or {}).items()) or "counts unknown"
    return f"{name}: {dataset}: {counts} (after RecBole's filters)"


def _log_inputs(ctx: RunContext, run: RecBoleRun, scenario: Any, config_dict: dict[str, Any]) -> None:
    """What the run was given: the RecBole config, the counts RecBole kept, the dataset as an MLflow input."""
    ctx.tracker.log_dict(_jsonable(config_dict), "recbole_config.json")
    ctx.tracker.log_params(_run_params(run))
    dataset = scenario.dataset
    ctx.tracker.log_dataset(dataset.label, dataset.digest, str(dataset.source), context="train", profile=run.kept)


def _log_best_model(ctx: RunContext, run: RecBoleRun) -> None:
    """The best checkpoint as weights (``checkpoints/best.pth``) and the best model in MLflow's pytorch flavor.

    Both hold CPU tensors whatever the run's device, so ``mlflow.pytorch.load_model`` works on a
    machine without the GPU that trained it.
    """
    best = torch.load(run.trainer.saved_model_file, map_location="cpu", weights_only=True)
    ctx.tracker.log_state_dict(best, "best.pth")
    run.trainer.load_checkpoint_state(best, with_optimizers=False)
    ctx.tracker.log_model(cpu_copy(run.model), "model")


def cpu_copy(model: torch.nn.Module) -> torch.nn.Module:
    """The model itself on a CPU run; else a CPU copy, its RecBole ``device`` attribute (read by some of RecBole's code) set to match."""
    if all(parameter.device.type == "cpu" for parameter in model.parameters()):
        return model
    copied = copy.deepcopy(model).cpu()
    if hasattr(copied, "device"):
        copied.device = torch.device("cpu")
    return copied


def _run_params(run: RecBoleRun) -> dict[str, Any]:
    params: dict[str, Any] = {
        "recbole.model_class": f"{type(run.model).__module__}.{type(run.model).__name__}",
        "recbole.trainer_class": f"{type(run.trainer).__module__}.{type(run.trainer).__name__}",
        **{f"recbole.{key}": value for key, value in (run.kept or {}).items()},
        "recbole.flops": run.flops,
    }
    steps = getattr(run.trainer, "steps_description", None)
    if steps:
        params["mclrec.optimization"] = steps
    return params


def _jsonable(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {str(key): _jsonable(value) for key, value in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_jsonable(value) for value in tree]
    return tree if isinstance(tree, (str, int, float, bool)) or tree is None else str(tree)
