"""One continual recommendation run: train period by period, evaluate every period after each, log, resume.

The recipe, top to bottom:

1. setup: build the scenario (the dataset and its periods), the model and its RecBole trainer
   exactly as a static sequential run builds them (``suite.sequential.pipeline.build_run``),
   the run's timeline on RecBole's ids, the method; restore the last period's checkpoint when
   the run resumes;
2. for each period: the method's ``before_period``; ``train.epochs`` epochs of the method's
   batches through the trainer's own epoch loop (MCLRec's meta-optimization included); the
   period's training time; evaluate every period (one row of each matrix); ``after_period``;
   save the resume checkpoint;
3. log both matrices (JSON and heatmaps) and return the summary: average, last, forgetting and
   BWT of NDCG@k and HR@k (the continual metrics of ``suite.continual.metrics``), and the
   training seconds per period and in all.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scenarios.recsys.periods import PeriodScenario, Timeline, boundaries
from suite.api import RunContext
from suite.continual.metrics import average_accuracies, average_incremental_accuracy, backward_transfer, forgetting, last_accuracy
from suite.continual.mlflow_logger import heatmap
from suite.devices import check_device
from suite.periodic.method import PeriodData, PeriodMethod
from suite.scenario_build import build_scenario
from suite.seeding import restore_rng_state, rng_state
from suite.sequential.meta_trainer import MetaTrainer
from suite.sequential.pipeline import build_run, config_dict_for, recbole_warnings_filtered
from suite.sequential.recbole_trainer import RecBoleTrainer

METRICS = ("ndcg", "hr")
K = 10
"""The cut-off of NDCG@K and HR@K in the period matrices."""


def run(ctx: RunContext, method: PeriodMethod) -> dict[str, float]:
    """Train and evaluate ``method`` period by period for one seed; the summary metrics."""
    train = ctx.train_options
    check_device(train.device)
    if train.num_threads:
        torch.set_num_threads(train.num_threads)
    scenario: PeriodScenario = build_scenario(ctx)
    model_class, model_fragment = ctx.model_entry.build(ctx.model_options)
    meta = MetaTrainer.trains(model_class)  # MCLRec-style models train with their meta-optimization
    method_fragment = (
        {"meta_optimization": train.meta_optimization, "augmenter_learning_rate": train.augmenter_learning_rate} if meta else None
    )
    config_dict = config_dict_for(scenario.config_fragment(), model_fragment, train, ctx.seed, Path(ctx.run_dir), method_fragment)
    recbole = build_run(model_class, config_dict, MetaTrainer if meta else RecBoleTrainer, Path(ctx.run_dir), train.torch_device())
    options = ctx.scenario_options
    timeline = _timeline(recbole.dataset, options.experiences, options.split_by)
    data = PeriodData(timeline, recbole.model, options.max_seq_length, recbole.dataset.item_num)
    rows: dict[str, list[list[float]]] = {name: [] for name in METRICS}
    seconds: list[float] = []
    method.start(data, recbole.trainer)
    first = _restore(ctx, recbole.trainer, method, rows, seconds)
    if first == 0:
        ctx.tracker.log_params({f"derived.period_{k}": str(count) for k, count in enumerate(scenario.counts)})
    periods = len(scenario.counts)
    for period in range(first, periods):
        seconds.append(_train_period(period, method, data, recbole.trainer, train, ctx.run_dir))
        for name, value in evaluate(data, periods, train.eval_batch_size, K).items():
            rows[name].append(value)
        _log_row(ctx, period, rows, seconds, K)
        method.after_period(period, data, train.eval_batch_size)
        state = {"period": period, "trainer": recbole.trainer.checkpoint_state(period), "method": method.state_dict()}
        ctx.checkpoints.save({**state, "rows": rows, "seconds": seconds, "rng": rng_state()})
    return _finish(ctx, method, rows, seconds, K)


def _timeline(dataset: Any, periods: int, split_by: str) -> Timeline:
    """RecBole's kept interactions (its ids) as a timeline, cut as the scenario's pre-flight cut the file's times."""
    feat = dataset.inter_feat
    users = feat[dataset.uid_field].numpy()
    items = feat[dataset.iid_field].numpy()
    times = feat[dataset.time_field].numpy().astype(float)
    return Timeline.of(users, items, times, boundaries(times, periods, split_by))


def _train_period(period: int, method: PeriodMethod, data: PeriodData, trainer: Any, train: Any, run_dir: Path) -> float:
    """``train.epochs`` epochs of the method's batches; the wall seconds they took."""
    started = time.perf_counter()
    method.before_period(period, data, trainer)
    loss = method.loss(data.model)
    with contextlib.chdir(run_dir), recbole_warnings_filtered(), torch.autograd.set_detect_anomaly(False):
        for epoch in range(train.epochs):
            batches = method.batches(period, epoch, data, train.train_batch_size)
            if len(batches):
                trainer._train_epoch(batches, period * train.epochs + epoch, loss_func=loss)
    return time.perf_counter() - started


def evaluate(data: PeriodData, periods: int, batch_size: int, k: int) -> dict[str, list[float]]:
    """NDCG@k and HR@k on every period's evaluation targets (full ranking, the input's items excluded)."""
    values: dict[str, list[float]] = {name: [] for name in METRICS}
    for period in range(periods):
        targets = data.timeline.evaluation(period)
        ranks = np.concatenate([_ranks(data, chunk) for chunk in np.array_split(targets, max(1, -(-len(targets) // batch_size)))])
        hits = ranks < k
        values["hr"].append(float(hits.mean()))
        values["ndcg"].append(float(np.where(hits, 1.0 / np.log2(ranks + 2.0), 0.0).mean()))
    return values


def _ranks(data: PeriodData, indices: np.ndarray) -> np.ndarray:
    scores = data.scores(indices, len(indices))
    sequences, _ = data.timeline.inputs(indices, data.max_length)
    scores[:, 0] = -torch.inf
    scores.scatter_(1, torch.as_tensor(sequences, dtype=torch.long), -torch.inf)  # the padding id 0 again for short inputs
    target = torch.as_tensor(data.timeline.items[indices], dtype=torch.long)
    target_score = scores.gather(1, target[:, None])
    return (scores > target_score).sum(dim=1).numpy()


def _log_row(ctx: RunContext, period: int, rows: dict[str, list[list[float]]], seconds: list[float], k: int) -> None:
    """The averages over the periods seen so far (the launch's curve) and this period's training time, step = period."""
    seen = [len(rows["ndcg"])]
    metrics = {f"avg_{name}_at_{k}_seen": average_accuracies([rows[name][-1]], seen)[0] for name in METRICS}
    metrics["period_train_seconds"] = seconds[-1]
    ctx.tracker.log_metrics(metrics, step=period)
    if not ctx.quiet:
        shown = " ".join(f"{value:.4f}" for value in rows["ndcg"][-1])
        print(f"period {period}: ndcg@{k} [{shown}]  ({seconds[-1]:.1f} s)", flush=True)


def _restore(ctx: RunContext, trainer: Any, method: PeriodMethod, rows: dict[str, list], seconds: list[float]) -> int:
    """Continue after the last saved period when the run resumes; the first period to train."""
    state = ctx.checkpoints.load() if ctx.checkpoints is not None else None
    if state is None:
        return 0
    trainer.load_checkpoint_state(state["trainer"])
    method.load_state_dict(state["method"])
    for name in METRICS:
        rows[name].extend(state["rows"][name])
    seconds.extend(state["seconds"])
    restore_rng_state(state["rng"])
    return int(state["period"]) + 1


def _finish(ctx: RunContext, method: PeriodMethod, rows: dict[str, list[list[float]]], seconds: list[float], k: int) -> dict[str, float]:
    summary: dict[str, float] = {"train_seconds": float(sum(seconds))}
    for name in METRICS:
        matrix = rows[name]
        seen = [i + 1 for i in range(len(matrix))]
        summary[f"avg_{name}_at_{k}"] = average_incremental_accuracy(matrix, seen)
        summary[f"last_{name}_at_{k}"] = last_accuracy(matrix, seen)
        summary[f"forgetting_{name}_at_{k}"] = forgetting(matrix, seen)
        summary[f"bwt_{name}_at_{k}"] = backward_transfer(matrix, seen)
        payload = {"matrix": matrix, "rows": "trained up to period i", "columns": "evaluated on period j", "unit": f"{name}@{k}"}
        ctx.tracker.log_dict(payload, f"{name}_matrix.json")
        percent = [[100 * value for value in row] for row in matrix]
        ctx.tracker.log_figure(heatmap(percent, f"{method.name} seed={ctx.seed}: {name}@{k} x 100"), f"{name}_matrix.png")
    ctx.tracker.log_metrics(summary)
    return summary
