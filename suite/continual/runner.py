"""One continual SLU run: scenario -> model -> Avalanche strategy + the method's plugins -> train, evaluate, log.

``run(ctx, make_plugins, name)`` is what every continual ``MethodEntry`` calls (``entries.continual_method``),
with the method's plugin factory. It knows no method by name: it seeds every generator from
``ctx.seed``, trains experience by experience, evaluates the test experiences the strategy has
seen after each one (one row of the accuracy matrix), logs through ``ctx.tracker`` only (the
launcher owns the MLflow runs), and returns the summary metrics in percent: ``avg_acc``,
``last_acc``, ``forgetting``, ``bwt``, ``wer``. An experience in which the method trained nothing
(joint training after its single pass) adds no row.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch
from avalanche.training.plugins import EvaluationPlugin, SupervisedPlugin

from suite.api import RunContext
from suite.continual.entries import MethodSetup, PluginFactory
from suite.continual.metrics import AccuracyMatrix
from suite.continual.mlflow_logger import MLflowContinualLogger
from suite.continual.progress_bar import EpochProgressPlugin
from suite.continual.strategy import Seq2SeqTemplate
from suite.seeding import seed_everything


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def build_strategy(
    model: torch.nn.Module,
    scenario: Any,
    plugins: Sequence[SupervisedPlugin],
    train: Any,
    metrics: Sequence[Any],
    logger: MLflowContinualLogger,
    device: torch.device,
) -> Seq2SeqTemplate:
    """The seq2seq template with the method's plugins, a progress bar, and an evaluator of ``metrics`` writing to ``logger``."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    evaluator = EvaluationPlugin(*metrics, loggers=[logger])
    tokenizer = scenario.tokenizer
    return Seq2SeqTemplate(
        model=model,
        optimizer=optimizer,
        collate_fn=scenario.collate_fn,
        pad_id=tokenizer.pad_id,
        bos_id=tokenizer.bos_id,
        eos_id=tokenizer.eos_id,
        max_decode_len=train.max_decode_len,
        label_smoothing=train.label_smoothing,
        intent_weight=train.intent_weight,
        grad_clip=train.grad_clip,
        train_mb_size=train.batch_size,
        train_epochs=train.epochs,
        eval_mb_size=train.eval_batch_size,
        device=device,
        plugins=[*plugins, EpochProgressPlugin()],
        evaluator=evaluator,
    )


def make_strategy(
    make_plugins: PluginFactory,
    options: Any,
    scenario: Any,
    model: torch.nn.Module,
    train: Any,
    *,
    seed: int = 0,
    metrics: Sequence[Any] = (),
    logger: MLflowContinualLogger | None = None,
    device: torch.device | str = "cpu",
) -> Seq2SeqTemplate:
    """A method's strategy from its plugin factory and options: what ``run`` builds, for use outside the launcher."""
    plugins = make_plugins(options, MethodSetup(scenario=scenario, model=model, train=train, seed=seed))
    return build_strategy(model, scenario, plugins, train, metrics, logger or MLflowContinualLogger(None), torch.device(device))


def train_and_evaluate(
    strategy: Seq2SeqTemplate, scenario: Any, matrix: AccuracyMatrix, eval_future: bool = False, echo: bool = False
) -> None:
    """Experience by experience; after each one that trained, evaluate the test experiences seen so far."""
    train_stream, test_stream = scenario.benchmark.train_stream, scenario.benchmark.test_stream
    for experience in train_stream:
        strategy.train(experience, eval_streams=[])
        if strategy.clock.train_exp_iterations == 0:
            continue
        seen = range(len(test_stream)) if eval_future else sorted(strategy.seen_experiences)
        strategy.eval([test_stream[j] for j in seen])
        if echo:
            print(matrix.row_line(), flush=True)


def run(ctx: RunContext, make_plugins: PluginFactory, name: str = "continual") -> dict[str, float]:
    """Train and evaluate the method whose plugins ``make_plugins`` builds (``name`` for the terminal) for one seed."""
    train = ctx.train_options
    if train.num_threads:
        torch.set_num_threads(train.num_threads)
    seed_everything(ctx.seed)
    started = time.perf_counter()
    scenario = ctx.build_scenario()
    seed_everything(ctx.seed)
    device = resolve_device(train.device)
    tokenizer = scenario.tokenizer
    model = ctx.build_model(vocab_size=len(tokenizer), n_mels=scenario.n_mels, pad_id=tokenizer.pad_id).to(device)
    matrix = AccuracyMatrix(len(scenario.benchmark.test_stream))
    logger = MLflowContinualLogger(ctx.tracker)
    strategy = make_strategy(
        make_plugins, ctx.method_options, scenario, model, train, seed=ctx.seed, metrics=[matrix], logger=logger, device=device
    )
    _log_setup(ctx, scenario, model, strategy)
    echo = train.echo and not ctx.quiet
    if echo:
        print(f"{name}: {len(scenario.benchmark.train_stream)} experiences, classes per experience {list(scenario.classes_per_exp)}")
    with torch.autograd.set_detect_anomaly(False):  # RecBole's SINE switches it on at import, in any process that imports it
        train_and_evaluate(strategy, scenario, matrix, train.eval_future, echo)
    logger.log_accuracy_matrix(matrix.payload(), title=f"{name} seed={ctx.seed}")
    summary = matrix.summary()
    summary["train_seconds"] = time.perf_counter() - started
    _save_artifacts(ctx, scenario, model, strategy, train)
    return summary


def _log_setup(ctx: RunContext, scenario: Any, model: torch.nn.Module, strategy: Seq2SeqTemplate) -> None:
    if ctx.tracker is None:
        return
    ctx.tracker.log_params(
        {
            "derived.parameters": sum(p.numel() for p in model.parameters()),
            "derived.vocab_size": len(scenario.tokenizer),
            "derived.train_size": scenario.train_size,
            "derived.class_order": list(scenario.class_order),
            "derived.plugins": [type(p).__name__ for p in strategy.plugins if not isinstance(p, EvaluationPlugin)],
        }
    )


def _save_artifacts(ctx: RunContext, scenario: Any, model: torch.nn.Module, strategy: Seq2SeqTemplate, train: Any) -> None:
    if ctx.tracker is None:
        return
    path = scenario.tokenizer.save(ctx.run_dir / "tokenizer.json")
    ctx.tracker.log_artifact(path)
    if train.checkpoint:
        state = {
            "model": model.state_dict(),
            "optimizer": strategy.optimizer.state_dict(),
            "experiences_trained": len(strategy.seen_experiences),
            "seed": ctx.seed,
        }
        ctx.tracker.log_state_dict(state, "final.pt")
