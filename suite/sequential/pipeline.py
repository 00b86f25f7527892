"""RecBole's own pipeline, assembled by hand for one run, logged to MLflow.

``run_recbole``/``get_trainer`` look models up by name and write into the working
directory, so the suite builds the same steps itself (Config with every hyperparameter
explicit, init_seed, create_dataset, data_preparation, init_seed, model, FLOPs probe,
trainer) with the working directory switched to the run's own folder: RecBole's
``log_tensorboard/`` and ``saved/`` land there, never in the user's cwd. The steps and
their order are RecBole's ``run_recbole``, so a seed gives the same numbers as plain RecBole.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.data.transform import construct_transform
from recbole.utils import get_flops, init_seed

from suite.api import RunContext
from suite.progress import is_quiet

DEFAULT_METRICS = ["Hit", "NDCG"]


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


def train_config(train: Any) -> dict[str, Any]:
    """The training/evaluation half of the RecBole config, from the spec's ``train`` section."""
    use_gpu = train.device != "cpu"
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
        "valid_metric_bigger": True,
        "metrics": list(train.metrics),
        "topk": list(train.topk),
        "metric_decimal_place": 6,
        "use_gpu": use_gpu,
        "gpu_id": "0" if use_gpu else "",
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
    train: Any,
    seed: int,
    run_dir: Path,
    method_fragment: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Every key RecBole needs, explicit (custom model classes get no YAML defaults)."""
    return {
        **scenario_fragment,
        **model_fragment,
        **train_config(train),
        **(method_fragment or {}),
        "seed": seed,
        "checkpoint_dir": str(Path(run_dir) / "saved"),
    }


def build_run(model_class: type, config_dict: dict[str, Any], trainer_class: type, run_dir: Path) -> RecBoleRun:
    """RecBole's ``run_recbole`` steps up to the trainer, inside ``run_dir``."""
    with contextlib.chdir(run_dir):
        config = Config(model=model_class, dataset=config_dict["dataset"], config_dict=dict(config_dict))
        init_seed(config["seed"], config["reproducibility"])
        dataset = create_dataset(config)
        train_data, valid_data, test_data = data_preparation(config, dataset)
        init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
        model = model_class(config, train_data._dataset).to(config["device"])
        flops = get_flops(model, dataset, config["device"], logging.getLogger(), construct_transform(config))
        trainer = trainer_class(config, model)
    return RecBoleRun(config, dataset, train_data, valid_data, test_data, model, trainer, float(flops))


def fit_and_test(run: RecBoleRun, run_dir: Path) -> tuple[dict[str, float], dict[str, float]]:
    """RecBole's fit (early stopping on the valid metric) then test with the best checkpoint."""
    with contextlib.chdir(run_dir):
        _, best_valid = run.trainer.fit(run.train_data, run.valid_data, saved=True, show_progress=not is_quiet())
        test = run.trainer.evaluate(run.test_data, load_best_model=True, show_progress=False)
    return dict(best_valid or {}), dict(test)


class MlflowEpochLogger:
    """Sends the trainer's per-epoch losses and validation metrics to MLflow (step = epoch)."""

    def __init__(self, tracker: Any):
        self.tracker = tracker
        self.started = time.perf_counter()

    def __call__(self, kind: str, epoch: int, values: dict[str, float]) -> None:
        metrics = {f"{kind}.{key}": value for key, value in values.items()}
        if kind == "train":
            metrics["train.elapsed_s"] = time.perf_counter() - self.started
        self.tracker.log_metrics(metrics, step=epoch)


def run_sequential(ctx: RunContext, trainer_class: type, method_fragment: dict[str, Any] | None = None) -> dict[str, float]:
    """One seed: build, train, test; log to ``ctx.tracker``; return ``test.<metric>`` values."""
    if ctx.train_options.num_threads:
        torch.set_num_threads(ctx.train_options.num_threads)
    scenario = ctx.build_scenario()
    model_class, model_fragment = ctx.model_entry.build(ctx.model_options)
    run_dir = Path(ctx.run_dir)
    config_dict = config_dict_for(scenario.config_fragment(), model_fragment, ctx.train_options, ctx.seed, run_dir, method_fragment)
    run = build_run(model_class, config_dict, trainer_class, run_dir)
    run.trainer.epoch_listener = MlflowEpochLogger(ctx.tracker)
    ctx.tracker.log_dict(_jsonable(config_dict), "recbole_config.json")
    ctx.tracker.log_params(_run_params(run))
    best_valid, test = fit_and_test(run, run_dir)
    results = {f"test.{key}": float(value) for key, value in test.items()}
    logged = {**results, **{f"best_valid.{key}": float(v) for key, v in best_valid.items()}}
    ctx.tracker.log_metrics(logged)
    ctx.tracker.log_state_dict(torch.load(run.trainer.saved_model_file, weights_only=True), "best.pth")
    return results


def _run_params(run: RecBoleRun) -> dict[str, Any]:
    params: dict[str, Any] = {
        "recbole.model_class": f"{type(run.model).__module__}.{type(run.model).__name__}",
        "recbole.trainer_class": f"{type(run.trainer).__module__}.{type(run.trainer).__name__}",
        "recbole.users": run.dataset.user_num - 1,
        "recbole.items": run.dataset.item_num - 1,
        "recbole.interactions": run.dataset.inter_num,
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
