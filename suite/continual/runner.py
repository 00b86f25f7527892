"""One continual SLU run: scenario -> model -> Avalanche strategy + the method's plugins -> train, evaluate, log.

``run(ctx, make_plugins, name)`` is what every continual ``MethodEntry`` calls
(``entries.continual_method``), with the method's plugin factory. It knows no method by name;
it reads top to bottom like a recipe:

1. setup: seed every generator from ``ctx.seed``, build the scenario, the model, the method's
   plugins, the metrics (``AccuracyMatrix``, ``EpochLosses``), the MLflow logger and the
   resume checkpoint; log what the run is made of, or restore the state of the run it resumes;
2. train experience by experience; after each one that trained, evaluate the experiences seen
   so far (one row of the accuracy matrix) on the test stream, or on the valid stream while
   tuning (``ctx.evaluation == "valid"``: metrics ``valid.*``, the test stream is never read);
   save the resume state after every epoch and every experience;
3. log the accuracy matrix and the final model; return the summary metrics in percent:
   ``avg_acc``, ``last_acc``, ``forgetting``, ``bwt``, ``wer`` (``valid.``-prefixed while tuning).

An experience in which the method trained nothing (joint training after its single pass)
adds no row. All logging goes through ``ctx.tracker``; the launcher owns the MLflow runs.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from avalanche.training.plugins import EvaluationPlugin, SupervisedPlugin

from suite.api import RunContext
from suite.continual.method_setup import MethodSetup, PluginFactory
from suite.continual.metrics import AccuracyMatrix, EpochLosses
from suite.continual.mlflow_logger import MLflowContinualLogger
from suite.continual.progress_bar import EpochProgressPlugin
from suite.continual.resume import RunCheckpoint, method_plugins
from suite.continual.strategy import Seq2SeqTemplate
from suite.devices import check_device, resolve_device
from suite.run_clock import RunClock
from suite.scenario_build import build_scenario
from suite.seeding import preserved_rng, seed_everything

SKIPPED_FILES_SHOWN = 5


def build_strategy(
    model: torch.nn.Module,
    scenario: Any,
    plugins: Sequence[SupervisedPlugin],
    train: Any,
    metrics: Sequence[Any],
    logger: MLflowContinualLogger,
    device: torch.device,
    quiet: bool = False,
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
        grad_clip_on=train.grad_clip_on,
        train_mb_size=train.batch_size,
        train_epochs=train.epochs,
        eval_mb_size=train.eval_batch_size,
        device=device,
        plugins=[*plugins, EpochProgressPlugin(quiet)],
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
    quiet: bool = False,
) -> Seq2SeqTemplate:
    """A method's strategy from its plugin factory and options: what ``run`` builds, for use outside the launcher."""
    plugins = make_plugins(options, MethodSetup(scenario=scenario, model=model, train=train, seed=seed))
    logger = logger or MLflowContinualLogger(None)
    return build_strategy(model, scenario, plugins, train, metrics, logger, torch.device(device), quiet)


def train_and_evaluate(
    strategy: Seq2SeqTemplate,
    train_stream: Sequence[Any],
    eval_stream: Sequence[Any],
    matrix: AccuracyMatrix,
    checkpoint: RunCheckpoint,
    *,
    epochs: int,
    start: tuple[int, int] = (0, 0),
    eval_future: bool = False,
    echo: bool = False,
) -> None:
    """Train from ``start`` (experience index, epochs of it already done); evaluate the seen experiences after each."""
    first, epochs_done = start
    for experience in train_stream:
        index = experience.current_experience
        if index < first:
            continue
        strategy.train_epochs = epochs - (epochs_done if index == first else 0)
        strategy.train(experience, eval_streams=[])
        if strategy.clock.train_exp_iterations:
            seen = range(len(eval_stream)) if eval_future else sorted(strategy.seen_experiences)
            strategy.eval([eval_stream[j] for j in seen])
            if echo:
                print(matrix.row_line(), flush=True)
        checkpoint.save(strategy, {"experience": index, "epochs": strategy.clock.train_exp_epochs, "evaluated": True})
    strategy.train_epochs = epochs


def run(ctx: RunContext, make_plugins: PluginFactory, name: str = "continual") -> dict[str, float]:
    """Train and evaluate the method whose plugins ``make_plugins`` builds (``name`` for the terminal) for one seed."""
    train = ctx.train_options
    if train.num_threads:
        torch.set_num_threads(train.num_threads)
    clock = RunClock()
    seed_everything(ctx.seed)  # once: the launcher seeds too, but this runner also runs without it (make_strategy, tests)
    with preserved_rng():  # the model's initial weights must not depend on what the scenario's build drew
        scenario = build_scenario(ctx)
    check_device(train.device)  # where the run trains (a Ray worker's GPUs are not the launcher's)
    device = resolve_device(train.device)
    tokenizer = scenario.tokenizer
    model = ctx.build_model(vocab_size=len(tokenizer), n_mels=scenario.n_mels, pad_id=tokenizer.pad_id).to(device)
    eval_stream = getattr(scenario.benchmark, f"{ctx.evaluation}_stream")
    matrix = AccuracyMatrix(len(eval_stream), prefix="valid." if ctx.evaluation == "valid" else "")
    losses = EpochLosses()
    logger = MLflowContinualLogger(ctx.tracker)
    strategy = make_strategy(
        make_plugins,
        ctx.method_options,
        scenario,
        model,
        train,
        seed=ctx.seed,
        metrics=[matrix, losses],
        logger=logger,
        device=device,
        quiet=ctx.quiet,
    )
    checkpoint = RunCheckpoint(ctx.checkpoints, {"matrix": matrix, "losses": losses}, clock)
    checkpoint.attach(strategy)
    echo = train.echo and not ctx.quiet
    state = ctx.checkpoints.load(map_location=device) if ctx.checkpoints is not None else None
    start = (0, 0)
    if state is None:
        _log_setup(ctx, scenario, model, strategy)
        if echo:
            print(f"{name}: {len(scenario.benchmark.train_stream)} experiences, classes per experience {list(scenario.classes_per_exp)}")
    else:
        start = checkpoint.restore(strategy, state)
        if echo:
            print(f"{name}: resuming at experience {start[0]} after {start[1]} epoch(s) of it", flush=True)
    with torch.autograd.set_detect_anomaly(False):  # RecBole's SINE switches it on at import, in any process that imports it
        train_and_evaluate(
            strategy,
            scenario.benchmark.train_stream,
            eval_stream,
            matrix,
            checkpoint,
            epochs=train.epochs,
            start=start,
            eval_future=train.eval_future,
            echo=echo,
        )
    logger.log_accuracy_matrix(matrix.payload(), title=f"{name} seed={ctx.seed}")
    _log_final_model(ctx, scenario, model, train)
    summary = matrix.summary()
    seconds = clock.seconds()
    if seconds is not None:  # unknown after resuming a checkpoint from before the count (suite.run_clock)
        summary["train_seconds"] = seconds
    return summary


def _log_setup(ctx: RunContext, scenario: Any, model: torch.nn.Module, strategy: Seq2SeqTemplate) -> None:
    """What the run is made of: derived sizes, the plugins, the dataset (an MLflow input), the audio files skipped (count, first few)."""
    skipped = list(getattr(scenario, "skipped_files", None) or [])  # the SLU scenario prints them when it builds
    if ctx.tracker is None:
        return
    params = {
        "derived.parameters": sum(p.numel() for p in model.parameters()),
        "derived.vocab_size": len(scenario.tokenizer),
        "derived.train_size": scenario.train_size,
        "derived.class_order": list(scenario.class_order),
        "derived.plugins": [type(p).__name__ for p in method_plugins(strategy) if not isinstance(p, EpochProgressPlugin)],
        "derived.skipped_audio": len(skipped),
    }
    if skipped:
        params["derived.skipped_audio_files"] = skipped[:SKIPPED_FILES_SHOWN]
    ctx.tracker.log_params(params)
    ctx.tracker.log_dataset(
        name=ctx.scenario_entry.name,
        digest=_dataset_digest(scenario),
        source=str(getattr(scenario, "corpus_dir", None) or ctx.scenario_entry.name),
        context="train",
        profile={"train_size": scenario.train_size, "classes_per_exp": list(scenario.classes_per_exp), "skipped_audio": len(skipped)},
    )


def _dataset_digest(scenario: Any) -> str:
    """The corpus fingerprint when the scenario has one, else the feature cache key (corpus fingerprint + feature options)."""
    fingerprint = getattr(scenario, "fingerprint", None)
    if fingerprint:
        return str(fingerprint)
    cache = getattr(scenario, "feature_cache_dir", None)
    return cache.name.rsplit("-", 1)[-1] if cache else "unknown"


def _log_final_model(ctx: RunContext, scenario: Any, model: torch.nn.Module, train: Any) -> None:
    """The tokenizer as an artifact, and the model in MLflow's pytorch flavor (a CPU copy, the tokenizer inside)."""
    if ctx.tracker is None:
        return
    tokenizer_path = scenario.tokenizer.save(ctx.run_dir / "tokenizer.json")
    ctx.tracker.log_artifact(tokenizer_path)
    if train.checkpoint:
        ctx.tracker.log_model(copy.deepcopy(model).cpu().eval(), "model", extra_files=[tokenizer_path])
