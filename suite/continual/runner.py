"""One continual SLU run: scenario -> model -> Avalanche strategy + plugins -> train, evaluate, log.

``run(ctx, method)`` is what every continual ``MethodEntry`` calls. It seeds every
generator from ``ctx.seed``, trains experience by experience (joint: once, on all of them),
evaluates on the test experiences seen so far after each one (one row of the accuracy
matrix), logs through ``ctx.tracker`` only (the launcher owns the MLflow runs), and returns
the summary metrics in percent: ``avg_acc``, ``last_acc``, ``forgetting``, ``bwt``, ``wer``.
"""

from __future__ import annotations

import random
import time
from typing import Any

import numpy as np
import torch
from avalanche.training.determinism.rng_manager import RNGManager
from avalanche.training.plugins import EvaluationPlugin, SupervisedPlugin

from suite.continual.akd import AKDPlugin
from suite.continual.coconut import CoconutPlugin
from suite.continual.ewc import Seq2SeqEWCPlugin
from suite.continual.joint import JointDataPlugin
from suite.continual.lwf import Seq2SeqLwFPlugin
from suite.continual.metrics import DecodingMetrics
from suite.continual.mlflow_logger import MLflowContinualLogger
from suite.continual.progress import EpochProgressPlugin
from suite.continual.replay import Seq2SeqReplayPlugin, buffer_size, make_storage_policy
from suite.continual.skd import SKDPlugin
from suite.continual.strategy import Seq2SeqTemplate

METHODS = ("finetune", "joint", "replay", "ewc", "lwf", "akd", "skd", "coconut")


def seed_all(seed: int) -> None:
    """Python, NumPy, torch and Avalanche's RNG manager, all from one seed."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    RNGManager.set_random_seeds(seed)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def method_plugins(method: str, options: Any, slu: Any, train: Any) -> list[SupervisedPlugin]:
    """The Avalanche plugins that make ``method`` out of the seq2seq template."""
    if method not in METHODS:
        raise ValueError(f"unknown continual method '{method}'; known: {', '.join(METHODS)}")
    plugins: list[SupervisedPlugin] = []
    tokenizer = slu.tokenizer
    if method == "joint":
        plugins.append(JointDataPlugin(list(slu.benchmark.train_stream)))
    if method == "ewc":
        plugins.append(Seq2SeqEWCPlugin(options.ewc_lambda, slu.collate_fn, tokenizer.pad_id, options.mode, options.decay_factor))
    if method == "lwf":
        plugins.append(Seq2SeqLwFPlugin(alpha=options.alpha, temperature=options.temperature))
    if hasattr(options, "replay"):
        size = buffer_size(options.replay.size, slu.train_size)
        policy = make_storage_policy(options.replay.policy, size, slu.collate_fn)
        plugins.append(Seq2SeqReplayPlugin(size, slu.collate_fn, policy, batch_size_mem=options.replay.batch_size_mem))
    if method == "akd":
        plugins.append(AKDPlugin(options.akd.weight))
    if method == "coconut":
        plugins.append(CoconutPlugin(options.nspt.weight, options.nspt.temperature, options.mm.weight, options.mm.temperature))
    if method == "skd" or (method == "coconut" and options.skd.weight > 0):
        plugins.append(SKDPlugin(options.skd.weight))
    return plugins


def build_strategy(
    model: torch.nn.Module, slu: Any, method: str, options: Any, train: Any, logger: MLflowContinualLogger | None, device: torch.device
) -> Seq2SeqTemplate:
    """The seq2seq template with the method's plugins and the decoding evaluator."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    evaluator = EvaluationPlugin(DecodingMetrics(), loggers=[logger] if logger else [])
    tokenizer = slu.tokenizer
    return Seq2SeqTemplate(
        model=model,
        optimizer=optimizer,
        collate_fn=slu.collate_fn,
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
        plugins=[*method_plugins(method, options, slu, train), EpochProgressPlugin()],
        evaluator=evaluator,
    )


def train_and_evaluate(strategy: Seq2SeqTemplate, slu: Any, method: str, eval_future: bool = False) -> None:
    """Experience by experience, evaluating the seen test experiences after each (joint: once)."""
    train_stream, test_stream = slu.benchmark.train_stream, slu.benchmark.test_stream
    if method == "joint":
        strategy.train(train_stream[len(train_stream) - 1], eval_streams=[])
        strategy.eval(test_stream)
        return
    for index, experience in enumerate(train_stream):
        strategy.train(experience, eval_streams=[])
        strategy.eval(test_stream if eval_future else test_stream[: index + 1])


def run(ctx: Any, method: str) -> dict[str, float]:
    """Train and evaluate ``method`` for one seed; log to ``ctx.tracker``; return the summary."""
    train = ctx.train_options
    if train.num_threads:
        torch.set_num_threads(train.num_threads)
    seed_all(ctx.seed)
    started = time.perf_counter()
    slu = ctx.build_scenario()
    seed_all(ctx.seed)
    device = resolve_device(train.device)
    tokenizer = slu.tokenizer
    model = ctx.build_model(vocab_size=len(tokenizer), n_mels=slu.n_mels, pad_id=tokenizer.pad_id).to(device)
    logger = MLflowContinualLogger(ctx.tracker, len(slu.benchmark.test_stream), echo=train.echo and not ctx.quiet)
    strategy = build_strategy(model, slu, method, ctx.method_options, train, logger, device)
    _log_setup(ctx, slu, model, strategy)
    if logger.echo:
        print(f"{method}: {len(slu.benchmark.train_stream)} experiences, classes per experience {list(slu.classes_per_exp)}", flush=True)
    with torch.autograd.set_detect_anomaly(False):  # RecBole's SINE switches it on at import, in any process that imports it
        train_and_evaluate(strategy, slu, method, train.eval_future)
    logger.finalize()
    summary = logger.summary()
    summary["train_seconds"] = time.perf_counter() - started
    _save_artifacts(ctx, slu, model, strategy, train)
    return summary


def _log_setup(ctx: Any, slu: Any, model: torch.nn.Module, strategy: Seq2SeqTemplate) -> None:
    if ctx.tracker is None:
        return
    ctx.tracker.log_params(
        {
            "derived.parameters": sum(p.numel() for p in model.parameters()),
            "derived.vocab_size": len(slu.tokenizer),
            "derived.train_size": slu.train_size,
            "derived.class_order": list(slu.class_order),
            "derived.plugins": [type(p).__name__ for p in strategy.plugins if not isinstance(p, EvaluationPlugin)],
        }
    )


def _save_artifacts(ctx: Any, slu: Any, model: torch.nn.Module, strategy: Seq2SeqTemplate, train: Any) -> None:
    if ctx.tracker is None:
        return
    path = slu.tokenizer.save(ctx.run_dir / "tokenizer.json")
    ctx.tracker.log_artifact(path)
    if train.checkpoint:
        state = {
            "model": model.state_dict(),
            "optimizer": strategy.optimizer.state_dict(),
            "experiences_trained": len(strategy.seen_experiences),
            "seed": ctx.seed,
        }
        ctx.tracker.log_state_dict(state, "final.pt")
