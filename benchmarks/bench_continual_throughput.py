"""Training throughput of the suite's continual loops against a plain PyTorch loop, in one run.

What is compared, on the second experience (where the replay buffer is in use), one epoch:

- ``plain``: a hand-written PyTorch loop (forward, token cross-entropy, backward, clip, AdamW
  step) over exactly the batches the suite's replay loop produced (recorded, already
  collated: the plain loop pays no data loading, so the ratio is conservative);
- ``replay``: the suite's Avalanche template + replay plugin (loader, collate, plugins);
- ``coconut``: the same plus COCONUT's NSPT and MM losses, also with each loss alone, to
  show what each costs.

All loops start from the same weights (trained on the first experience) and the same buffer.
``--quickstart`` also runs ``runs/quickstart.yaml`` in a child process and reports its peak
RSS (target < 4 GB).

    .venv/bin/python benchmarks/bench_continual_throughput.py [--preset small] [--threads 2] [--quickstart]
"""

from __future__ import annotations

import argparse
import copy
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from avalanche.training.plugins import SupervisedPlugin

from suite.continual import coconut, replay
from suite.continual.coconut import CoconutOptions, CoconutPlugin
from suite.continual.entries import SLU_SEQ2SEQ
from suite.continual.options import ContinualTrain, SLUModelOptions
from suite.continual.replay import ReplayMethodOptions, ReplayOptions, Seq2SeqReplayPlugin
from suite.continual.runner import make_strategy
from suite.continual.strategy import sequence_loss
from suite.continual.synthetic import build_synthetic_slu
from suite.continual.teacher import frozen_copy
from suite.seeding import seed_everything

ROOT = Path(__file__).resolve().parents[1]


class BatchRecorder(SupervisedPlugin):
    """Keeps a CPU copy of every training batch, for the plain loop to replay."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[torch.Tensor]] = []

    def before_training_iteration(self, strategy, **kwargs) -> None:
        self.batches.append([part.detach().clone() for part in strategy.mbatch])


def make(method, options, slu, model_state, args, buffer_from=None, teacher_state=None):
    """A strategy for the ``method`` module starting from ``model_state``, with a copy of an existing buffer."""
    model = SLU_SEQ2SEQ.build(SLUModelOptions(preset=args.preset), vocab_size=len(slu.tokenizer), n_mels=slu.n_mels, pad_id=0)
    model.load_state_dict(model_state)
    train = ContinualTrain(epochs=1, batch_size=args.batch_size, lr=1e-3, echo=False)
    strategy = make_strategy(method.make_plugins, options, slu, model, train)
    if buffer_from is not None:
        replay = next(p for p in strategy.plugins if isinstance(p, Seq2SeqReplayPlugin))
        replay.storage_policy = copy.deepcopy(buffer_from)
    for plugin in strategy.plugins:
        if isinstance(plugin, CoconutPlugin) and teacher_state is not None:
            plugin.teacher = frozen_copy(model)
            plugin.teacher.load_state_dict(teacher_state)
            plugin.teacher_heads = frozen_copy(plugin.heads)
    return strategy


def timed_epoch(strategy, experience, recorder: BatchRecorder | None = None) -> tuple[float, int]:
    """Seconds and utterances of one training epoch of the suite's loop on ``experience``."""
    counter = BatchRecorder() if recorder is None else recorder
    strategy.plugins.append(counter)
    seed_everything(1)
    started = time.perf_counter()
    strategy.train(experience, eval_streams=[])
    elapsed = time.perf_counter() - started
    strategy.plugins.remove(counter)
    return elapsed, sum(batch[0].size(0) for batch in counter.batches)


def plain_epoch(batches, slu, model_state, args) -> float:
    """Seconds for a plain PyTorch loop over the recorded batches, same model and optimizer."""
    model = SLU_SEQ2SEQ.build(SLUModelOptions(preset=args.preset), vocab_size=len(slu.tokenizer), n_mels=slu.n_mels, pad_id=0)
    model.load_state_dict(model_state)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    started = time.perf_counter()
    for batch in batches:
        optimizer.zero_grad()
        loss = sequence_loss(model, batch, pad_id=0)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
    return time.perf_counter() - started


def quickstart_peak_rss() -> tuple[float, float, int]:
    """Run the quickstart in a child process: (seconds, peak RSS in GiB, exit code)."""
    with tempfile.TemporaryDirectory() as workdir:
        started = time.perf_counter()
        code = subprocess.call([sys.executable, "-m", "suite.cli", "run", str(ROOT / "runs" / "quickstart.yaml")], cwd=workdir)
        elapsed = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, peak_kib / 2**20, code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: robust on a shared machine, where 2 OpenMP threads can stall)"
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--per-class", type=int, default=64, help="training utterances per class (6 classes, 3 experiences)")
    parser.add_argument("--frames", type=int, nargs=2, default=(150, 250), help="utterance length range in 10 ms frames")
    parser.add_argument("--n-mels", type=int, default=80)
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions (best kept)")
    parser.add_argument("--quickstart", action="store_true", help="also run runs/quickstart.yaml and report its peak RSS")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    seed_everything(0)
    slu = build_synthetic_slu(per_class=(args.per_class, 2, 4), n_mels=args.n_mels, frames=tuple(args.frames))
    first, second = list(slu.benchmark.train_stream)[:2]
    replay_options = ReplayMethodOptions(replay=ReplayOptions(size=args.per_class * 2))
    warm = make(
        replay,
        replay_options,
        slu,
        SLU_SEQ2SEQ.build(SLUModelOptions(preset=args.preset), vocab_size=len(slu.tokenizer), n_mels=slu.n_mels, pad_id=0).state_dict(),
        args,
    )
    warm.train(first, eval_streams=[])  # fills the buffer, gives the starting weights and the teacher
    state = copy.deepcopy(warm.model.state_dict())
    buffer = next(p for p in warm.plugins if isinstance(p, Seq2SeqReplayPlugin)).storage_policy

    recorder = BatchRecorder()
    replay_s, utterances = timed_epoch(make(replay, replay_options, slu, state, args, buffer), second, recorder)  # also warms up
    plain_s = plain_epoch(recorder.batches, slu, state, args)
    for _ in range(args.repeats):  # alternate, keep the best of each: the machine is shared and noisy
        plain_s = min(plain_s, plain_epoch(recorder.batches, slu, state, args))
        replay_s = min(replay_s, timed_epoch(make(replay, replay_options, slu, state, args, buffer), second)[0])
    results = {"plain": plain_s, "replay": replay_s}
    variants = {
        "coconut": CoconutOptions(replay=replay_options.replay),
        "coconut (NSPT only)": CoconutOptions(replay=replay_options.replay, mm={"weight": 0.0}),
        "coconut (MM only)": CoconutOptions(replay=replay_options.replay, nspt={"weight": 0.0}),
    }
    for label, options in variants.items():
        results[label] = min(
            timed_epoch(make(coconut, options, slu, state, args, buffer, teacher_state=state), second)[0]
            for _ in range(max(1, args.repeats - 1))
        )

    print(
        f"\n{len(recorder.batches)} batches, {utterances} utterances (new + rehearsal), preset {args.preset}, "
        f"{args.threads} threads, frames {args.frames[0]}-{args.frames[1]} x {args.n_mels} mels"
    )
    print(f"{'loop':<22}{'seconds':>9}{'utt/s':>9}{'vs plain':>10}{'vs replay':>11}")
    for label, seconds in results.items():
        print(f"{label:<22}{seconds:9.2f}{utterances / seconds:9.1f}{plain_s / seconds:10.2f}{replay_s / seconds:11.2f}")
    overhead = 100.0 * (replay_s / plain_s - 1.0)
    print(
        f"\nreplay loop overhead over plain PyTorch: {overhead:+.1f}% (target: within 15%) -> {'OK' if overhead <= 15 else 'ABOVE TARGET'}"
    )
    extra = {label: 100.0 * (results[label] / replay_s - 1.0) for label in ("coconut", "coconut (NSPT only)", "coconut (MM only)")}
    print(
        f"COCONUT costs {extra['coconut']:+.1f}% over replay "
        f"(NSPT alone {extra['coconut (NSPT only)']:+.1f}%, MM alone {extra['coconut (MM only)']:+.1f}%)"
    )
    if args.quickstart:
        seconds, peak_gib, code = quickstart_peak_rss()
        verdict = "OK" if peak_gib < 4 and code == 0 else "CHECK"
        print(f"\nquickstart: exit {code}, {seconds:.0f} s, peak RSS {peak_gib:.2f} GiB (target < 4 GiB) -> {verdict}")


if __name__ == "__main__":
    main()
