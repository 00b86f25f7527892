"""Training time per epoch, interleaved: SASRec (RecBole's, the baseline), SASRec, CL4SRec and MCLRec on the fused encoder.

Same data (ml-100k under the reproduction specs' protocol: ``runs/sasrec-ml100k.yaml``'s
scenario, 5-core users and items, batch 256), the same fixed batches for every variant
(the first ``--max-batches`` of one shuffled pass), the same torch threads. Epochs are
interleaved in one process, in turns of ``--chunk`` batches (baseline, variant, variant, ...,
baseline, ...), so that load from other processes hits all variants alike; each variant's
median over ``--rounds`` and its ratio to the baseline's median are printed, in wall time
and in this process's CPU time (the steadier of the two on a shared machine with one thread).

    nice -n 5 python benchmarks/bench_mclrec_vs_sasrec.py [--rounds 3] [--max-batches 40] [--chunk 10] [--threads 1 2] [--before]
    python benchmarks/bench_mclrec_vs_sasrec.py --device cuda --threads 1   # make gpu-check

On ``--device cuda`` every turn waits for the GPU (``torch.cuda.synchronize``) before its clock
stops, and the CPU-time column is the host's time spent launching and waiting.

Targets (issue 9): SASRec fused <= 0.5x, MCLRec two-step <= 1.5x, three-step <= 2.5x the
baseline's epoch. ``--before`` adds MCLRec three-step on RecBole's encoder stack.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from suite import spec as specs
from suite.api import BuildContext
from suite.sequential import entries as P
from suite.sequential.meta_trainer import MetaTrainer
from suite.sequential.pipeline import build_run, config_dict_for
from suite.sequential.recbole_trainer import RecBoleTrainer

SPEC = Path(__file__).resolve().parents[1] / "runs" / "sasrec-ml100k.yaml"
BASELINE = "sasrec (RecBole)"
TARGETS = {"sasrec (fused)": 0.5, "mclrec 2-step": 1.5, "mclrec 3-step": 2.5}


@dataclass
class Variant:
    name: str
    model: Any  # ModelEntry
    options: Any
    trainer_class: type
    method: dict[str, Any]


def variants(before: bool) -> list[Variant]:
    chosen = [
        Variant(BASELINE, P.SASREC, P.SASRecOptions(encoder="recbole"), RecBoleTrainer, {}),
        Variant("sasrec (fused)", P.SASREC, P.SASRecOptions(encoder="fused"), RecBoleTrainer, {}),
        Variant("cl4srec", P.CL4SREC, P.CL4SRecOptions(), RecBoleTrainer, {}),
        Variant("mclrec 2-step", P.MCLREC, P.MCLRecOptions(), MetaTrainer, {"meta_optimization": "two-step"}),
        Variant("mclrec 3-step", P.MCLREC, P.MCLRecOptions(), MetaTrainer, {"meta_optimization": "three-step"}),
    ]
    if before:
        chosen.append(
            Variant(
                "mclrec 3-step, RecBole stack",
                P.MCLREC,
                P.MCLRecOptions(encoder="recbole"),
                MetaTrainer,
                {"meta_optimization": "three-step"},
            )
        )
    return chosen


def build_trainers(chosen: list[Variant], run_dir: Path, device: torch.device) -> tuple[dict[str, Any], list[Any], int]:
    """Each variant's trainer on one dataset (its model on ``device``), and the fixed batches every variant trains on."""
    point = specs.plan(SPEC, check_data=False).base
    train = point.train_options.model_copy(update={"device": str(device)})
    scenario = point.scenario.build(point.scenario_options, BuildContext(seed=0, cache_dir=run_dir, run_dir=run_dir))
    trainers, loader = {}, None
    for variant in chosen:
        model_class, fragment = variant.model.build(variant.options)
        config = config_dict_for(scenario.config_fragment(), fragment, train, 0, run_dir, variant.method)
        run = build_run(model_class, config, variant.trainer_class, run_dir, train.torch_device())
        trainers[variant.name] = run.trainer
        loader = loader or run.train_data
    return trainers, loader, point.train_options.train_batch_size


def measure(trainers: dict[str, Any], batches: list[Any], rounds: int, chunk: int) -> dict[str, tuple[list[float], list[float]]]:
    """Wall and CPU seconds per epoch of each trainer, interleaved in chunks of ``chunk`` batches.

    Within a round every variant trains its epoch chunk by chunk, in turns (baseline's first
    chunk, each variant's first chunk, baseline's second, ...), so that a burst of load from
    other processes lands on all variants rather than on the one epoch it happens to hit.
    """
    times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in trainers}
    for trainer in trainers.values():  # warm-up: first-call allocations, lazy initializations
        trainer._train_epoch(batches[:2], 0)
    pieces = [batches[start : start + chunk] for start in range(0, len(batches), chunk)]
    for round_index in range(rounds):
        spent = {name: [0.0, 0.0] for name in trainers}
        for piece in pieces:
            for name, trainer in trainers.items():
                wall, cpu = time.perf_counter(), time.process_time()
                trainer._train_epoch(piece, round_index)
                if trainer.device.type == "cuda":
                    torch.cuda.synchronize(trainer.device)
                spent[name][0] += time.perf_counter() - wall
                spent[name][1] += time.process_time() - cpu
        for name, (wall, cpu) in spent.items():
            times[name][0].append(wall)
            times[name][1].append(cpu)
            print(f"  round {round_index} {name:30s} {wall:7.2f} s wall {cpu:7.2f} s cpu", flush=True)
    return times


def report(times: dict[str, tuple[list[float], list[float]]], batches: int, full_epoch_batches: int) -> None:
    base_wall, base_cpu = (statistics.median(values) for values in times[BASELINE])
    print(f"{'variant':30s} {'wall s/epoch':>12s} {'ratio':>6s} {'cpu s/epoch':>12s} {'ratio':>6s} {'full epoch (est.)':>18s}  target")
    for name, (wall, cpu) in times.items():
        wall_median, cpu_median = statistics.median(wall), statistics.median(cpu)
        ratio = wall_median / base_wall
        target = TARGETS.get(name)
        verdict = "" if target is None else f"<= {target}x: {'met' if ratio <= target else 'NOT met'}"
        full = wall_median / batches * full_epoch_batches
        print(f"{name:30s} {wall_median:12.2f} {ratio:5.2f}x {cpu_median:12.2f} {cpu_median / base_cpu:5.2f}x {full:16.0f} s  {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-batches", type=int, default=40, help="batches per measured epoch; 0 = the whole epoch")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--chunk", type=int, default=10, help="batches per interleaved turn")
    parser.add_argument("--before", action="store_true", help="add MCLRec three-step on RecBole's encoder stack")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.autograd.set_detect_anomaly(False)  # RecBole's SINE turns it on at import; the trainers' fit does the same
    run_dir = Path(tempfile.mkdtemp(prefix="bench-"))
    trainers, loader, batch_size = build_trainers(variants(args.before), run_dir, device)
    batches = [batch for _, batch in zip(range(args.max_batches or len(loader)), loader)]
    for threads in args.threads:
        torch.set_num_threads(threads)
        print(
            f"ml-100k (5-core): {len(loader)} batches of {batch_size} per full epoch; measuring the same {len(batches)} per epoch, "
            f"{args.rounds} interleaved rounds, {threads} torch thread(s), on {_device_name(device)}",
            flush=True,
        )
        report(measure(trainers, batches, args.rounds, args.chunk), len(batches), len(loader))


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "the CPU"


if __name__ == "__main__":
    main()
