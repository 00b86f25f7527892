"""Training time per epoch: MCLRec (two steps, and the authors' three) against RecBole's SASRec and CL4SRec.

Same data (ml-100k, leave-one-out training sequences, batch 256), same encoder
hyperparameters, one RecBole dataloader shared by all. Epochs are interleaved in one
process (SASRec, CL4SRec, MCLRec, MCLRec-3, SASRec, ...) so that load from other processes hits all
variants alike; the medians and their ratios are printed. Target: MCLRec two-step <= 1.8x.

    python benchmarks/bench_mclrec_vs_sasrec.py [--rounds 3] [--max-batches 40]

``--max-batches`` caps each "epoch" at the first N batches of the (shuffled) dataloader so
the run fits in a few minutes; the printout says what was measured.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from recbole.config import Config
from recbole.utils import init_seed

from models.mclrec import MCLRec
from scenarios.recsys.entries import RECBOLE
from suite.api import BuildContext
from suite.sequential import entries as P
from suite.sequential.meta_trainer import MetaTrainer
from suite.sequential.pipeline import build_run, config_dict_for
from suite.sequential.recbole_trainer import RecBoleTrainer


class FirstBatches:
    """The first ``limit`` batches of a RecBole dataloader, as a dataloader."""

    def __init__(self, loader: Any, limit: int | None):
        self.loader, self.limit = loader, limit
        self.shuffle = getattr(loader, "shuffle", False)

    def __iter__(self):
        return itertools.islice(iter(self.loader), self.limit)

    def __len__(self) -> int:
        return len(self.loader) if self.limit is None else min(self.limit, len(self.loader))


def contrastive_trainer(plugin: Any, options: Any, trainer_class: type, base_config: dict, dataset: Any, extra: dict) -> Any:
    """A CL4SRec or MCLRec model (both the MCLRec class) and its trainer on the already built dataset."""
    _, fragment = plugin.build(options)
    config_dict = {**base_config, **fragment, **extra}
    config = Config(model=MCLRec, dataset=config_dict["dataset"], config_dict=config_dict)
    init_seed(config["seed"], True)
    return trainer_class(config, MCLRec(config, dataset))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--max-batches",
        type=int,
        default=40,
        help="batches per measured epoch; 0 = the whole epoch (about an hour for all four on 2 cores)",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-third-step", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.autograd.set_detect_anomaly(False)  # RecBole's SINE turns it on at import; the trainers' fit does the same
    run_dir = Path(tempfile.mkdtemp(prefix="bench-"))
    scenario = RECBOLE.build(RECBOLE.options(), BuildContext(seed=0, cache_dir=run_dir, run_dir=run_dir))
    train = P.SequentialTrainOptions(epochs=1)
    cls, fragment = P.SASREC.build(P.SASRecOptions())
    base = config_dict_for(scenario.config_fragment(), {}, train, 0, run_dir)
    sasrec = build_run(cls, {**base, **fragment}, RecBoleTrainer, run_dir)
    loader = FirstBatches(sasrec.train_data, args.max_batches or None)
    dataset = sasrec.train_data._dataset
    two_step = {"meta_optimization": "two-step"}
    trainers = {
        "sasrec": sasrec.trainer,
        "cl4srec": contrastive_trainer(P.CL4SREC, P.CL4SRecOptions(), RecBoleTrainer, base, dataset, {}),
        "mclrec": contrastive_trainer(P.MCLREC, P.MCLRecOptions(), MetaTrainer, base, dataset, two_step),
    }
    if not args.no_third_step:
        trainers["mclrec-3step"] = contrastive_trainer(
            P.MCLREC, P.MCLRecOptions(), MetaTrainer, base, dataset, {"meta_optimization": "three-step"}
        )
    times: dict[str, list[float]] = {name: [] for name in trainers}
    print(
        f"ml-100k: {len(sasrec.train_data)} batches of {train.train_batch_size} per full epoch; measuring {len(loader)} per epoch, "
        f"{args.rounds} interleaved rounds, {args.threads} torch thread(s)",
        flush=True,
    )
    for round_index in range(args.rounds):
        for name, trainer in trainers.items():
            started = time.perf_counter()
            trainer._train_epoch(loader, round_index)
            times[name].append(time.perf_counter() - started)
            print(f"round {round_index} {name:13s} {times[name][-1]:7.2f} s", flush=True)
    report(times, len(loader))


def report(times: dict[str, list[float]], batches: int) -> None:
    base = statistics.median(times["sasrec"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:13s} median {median:7.2f} s/epoch ({median / batches * 1000:6.1f} ms/batch)  ratio to SASRec {median / base:4.2f}x")
    ratio = statistics.median(times["mclrec"]) / base
    print(
        f"MCLRec two-step / SASRec = {ratio:.2f}x (target <= 1.8x: {'met' if ratio <= 1.8 else 'NOT met'}); "
        f"MCLRec two-step / CL4SRec = {statistics.median(times['mclrec']) / statistics.median(times['cl4srec']):.2f}x"
    )


if __name__ == "__main__":
    main()
