"""Where an MCLRec training step spends its time, before (RecBole's encoder stack, a Python loop
per sequence for the augmentation) and after (the fused encoder, batched augmentation).

The step is the meta-trainer's ``train_batch`` (three steps by default) on real ml-100k batches
(the reproduction specs' data). Under ``torch.profiler`` every operator's own time is given to a
category: the innermost labelled range around the forward code that ran it (attention,
feed-forward, norms and dropout, embedding, augmentation, loss, optimizer), and for a backward
operator the category of the forward operator it differentiates (matched by autograd's sequence
number). What no range claims (Python, the autograd engine, gradient accumulation) is "other".
A range's own time (the Python inside it) counts for its category; time no event covers is
"other". Milliseconds per batch are the profiled shares of the unprofiled step's CPU time (median of
interleaved rounds, before and after alternating, so that other processes' load hits both alike).

    nice -n 5 python benchmarks/bench_mclrec_profile.py [--batches 4] [--rounds 3] [--threads 1] [--steps three-step]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from recbole.model import layers as recbole_layers
from torch import nn
from torch.profiler import profile, record_function

import models.losses as losses
import models.mclrec as mclrec
import models.sasrec as sasrec
import models.transformer as transformer
from models.sequence_augmentation import AugmentedViews
from suite import spec as specs
from suite.api import BuildContext
from suite.sequential import entries as P
from suite.sequential.meta_trainer import MetaTrainer
from suite.sequential.pipeline import build_run, config_dict_for

SPEC = Path(__file__).resolve().parents[1] / "runs" / "mclrec-ml100k.yaml"
CATEGORIES = ("attention", "feed-forward", "norms & dropout", "embedding", "augmentation", "loss", "optimizer", "other")
PREFIX = "cat:"


def labelled(category: str, function: Any) -> Any:
    """``function`` run inside a profiler range named after its category."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with record_function(PREFIX + category):
            return function(*args, **kwargs)

    return wrapper


@contextlib.contextmanager
def instrumented():
    """Label the code of both stacks, the losses and the augmentation, for the duration."""
    targets = [
        (transformer.FusedSelfAttention, "forward", "attention"),
        (recbole_layers.MultiHeadAttention, "forward", "attention"),
        (transformer.FusedFeedForward, "forward", "feed-forward"),
        (recbole_layers.FeedForward, "forward", "feed-forward"),
        (nn.LayerNorm, "forward", "norms & dropout"),
        (nn.Dropout, "forward", "norms & dropout"),
        (transformer, "fast_dropout", "norms & dropout"),
        (sasrec, "fast_dropout", "norms & dropout"),
        (sasrec.FusedSASRec, "forward", "embedding"),
        (mclrec.MCLRec, "draw_views", "augmentation"),
        (mclrec.MCLRec, "rec_loss", "loss"),
        (mclrec.Augmenter, "forward", "loss"),
        (mclrec, "info_nce", "loss"),
        (mclrec, "cl2_terms", "loss"),
        (losses, "info_nce", "loss"),
        (torch.optim.Adam, "step", "optimizer"),
        (torch.optim.Optimizer, "zero_grad", "optimizer"),
    ]
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in targets]
    for owner, name, category in targets:
        setattr(owner, name, labelled(category, getattr(owner, name)))
    try:
        yield
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)


def category_of(event: Any, forward_categories: dict[int, str]) -> str:
    """The innermost labelled range above ``event``, or the category of the forward op it differentiates."""
    node = event
    while node is not None:
        if node.name.startswith(PREFIX):
            return node.name[len(PREFIX) :]
        if node.name.startswith("autograd::engine::evaluate_function") and node.sequence_nr in forward_categories:
            return forward_categories[node.sequence_nr]
        node = node.cpu_parent
    return "other"


def shares(prof: Any, profiled_seconds: float) -> dict[str, float]:
    """Each category's share of the profiled wall time.

    An event's own time goes to its category; a labelled range's own time (the Python inside
    it) to the range's category; what no event covers (Python between them) to "other".
    """
    events = list(prof.events())
    forward_categories = {}
    for event in events:
        if event.sequence_nr >= 0 and not event.name.startswith("autograd::"):
            forward_categories.setdefault(event.sequence_nr, category_of(event, {}))
    totals: dict[str, float] = defaultdict(float)
    for event in events:
        totals[category_of(event, forward_categories)] += event.self_cpu_time_total
    whole = profiled_seconds * 1e6  # microseconds, as the profiler counts
    totals["other"] += max(whole - sum(totals.values()), 0.0)
    return {category: totals[category] / max(whole, sum(totals.values())) for category in CATEGORIES}


class PerSequenceAugmentation:
    """The augmentation as the suite ran it before: numpy, one Python loop per sequence (the "before" column)."""

    def __init__(self, model: Any, seed: int = 0):
        self.model, self.rng = model, np.random.default_rng(seed)
        self.ratios = (model.augment.crop_ratio, model.augment.mask_ratio, model.augment.reorder_ratio)

    def views_of(self, items: list[int]) -> tuple[list[int], list[int]]:
        if len(items) <= 1:
            return list(items), list(items)
        crop_ratio, mask_ratio, reorder_ratio = self.ratios

        def crop() -> list[int]:
            span = max(1, int(np.floor(crop_ratio * len(items))))
            start = int(self.rng.integers(0, len(items) - span + 1))
            return items[start : start + span]

        def mask() -> list[int]:
            masked = list(items)
            for position in self.rng.choice(len(items), size=int(np.floor(mask_ratio * len(items))), replace=False):
                masked[int(position)] = self.model.mask_id
            return masked

        def reorder() -> list[int]:
            span = int(np.floor(reorder_ratio * len(items)))
            if span < 2:
                return list(items)
            start = int(self.rng.integers(0, len(items) - span + 1))
            shuffled = list(items[start : start + span])
            self.rng.shuffle(shuffled)
            return items[:start] + shuffled + items[start + span :]

        first, second = self.rng.choice(3, size=2, replace=False)
        return (crop, mask, reorder)[first](), (crop, mask, reorder)[second]()

    def __call__(self, interaction: Any) -> AugmentedViews:
        item_seq, lengths = interaction[self.model.ITEM_SEQ], interaction[self.model.ITEM_SEQ_LEN]
        views: tuple[list, list] = ([], [])
        for row, length in zip(item_seq.tolist(), lengths.tolist()):
            for target, view in zip(views, self.views_of(row[:length])):
                target.append(view)
        padded = []
        for sequences in views:
            seq = torch.zeros_like(item_seq)
            for row, items in enumerate(sequences):
                seq[row, : len(items)] = torch.tensor(items)
            padded += [seq, torch.tensor([len(items) for items in sequences])]
        return AugmentedViews(*padded)


def build(encoder: str, steps: str, run_dir: Path, scenario: Any, point: Any) -> MetaTrainer:
    model_class, fragment = P.MCLREC.build(P.MCLRecOptions(encoder=encoder))
    config = config_dict_for(scenario.config_fragment(), fragment, point.train_options, 0, run_dir, {"meta_optimization": steps})
    return build_run(model_class, config, MetaTrainer, run_dir)


def step_seconds(trainers: dict[str, MetaTrainer], batches: dict[str, list[Any]], rounds: int) -> dict[str, float]:
    """CPU seconds per batch of each trainer's step, interleaved round by round, median over rounds."""
    times: dict[str, list[float]] = {label: [] for label in trainers}
    for label, trainer in trainers.items():  # warm-up
        trainer.model.train()
        trainer.train_batch(batches[label][0])
    for _ in range(rounds):
        for label, trainer in trainers.items():
            started = time.process_time()
            for batch in batches[label]:
                trainer.train_batch(batch)
            times[label].append((time.process_time() - started) / len(batches[label]))
    return {label: statistics.median(values) for label, values in times.items()}


def step_shares(trainer: MetaTrainer, batches: list[Any]) -> dict[str, float]:
    """Each category's share of the step under the profiler."""
    with instrumented(), profile() as prof:
        started = time.process_time()
        for batch in batches:
            trainer.train_batch(batch)
        profiled = time.process_time() - started
    return shares(prof, profiled)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=4, help="batches per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (median)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", default="three-step", choices=["two-step", "three-step"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.autograd.set_detect_anomaly(False)
    run_dir = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    point = specs.plan(SPEC, check_data=False).base
    scenario = point.scenario.build(point.scenario_options, BuildContext(seed=0, cache_dir=run_dir, run_dir=run_dir))
    trainers, batches = {}, {}
    for label, encoder in (("before", "recbole"), ("after", "fused")):
        run = build(encoder, args.steps, run_dir, scenario, point)
        trainers[label], batches[label] = run.trainer, [batch for _, batch in zip(range(args.batches), run.train_data)]
        if label == "before":
            run.model.draw_views = labelled("augmentation", PerSequenceAugmentation(run.model))
    seconds = step_seconds(trainers, batches, args.rounds)
    results = {label: (seconds[label], step_shares(trainers[label], batches[label])) for label in trainers}
    print(
        f"MCLRec {args.steps}, ml-100k batches of {point.train_options.train_batch_size}, {args.threads} thread(s), "
        f"CPU ms per batch (median of {args.rounds} interleaved rounds of {args.batches} batches)"
    )
    print(f"{'category':18s} {'before ms':>10s} {'share':>6s} {'after ms':>10s} {'share':>6s} {'after/before':>12s}")
    (before_s, before), (after_s, after) = results["before"], results["after"]
    for category in CATEGORIES:
        b_ms, a_ms = before[category] * before_s * 1000, after[category] * after_s * 1000
        print(f"{category:18s} {b_ms:10.1f} {before[category]:6.0%} {a_ms:10.1f} {after[category]:6.0%} {a_ms / max(b_ms, 1e-9):11.2f}x")
    print(f"{'step':18s} {before_s * 1000:10.1f} {'':6s} {after_s * 1000:10.1f} {'':6s} {after_s / before_s:11.2f}x")


if __name__ == "__main__":
    main()
