"""What GSS-greedy's buffer selection costs: training time per experience against reservoir replay.

Both methods train the same synthetic class-incremental benchmark (``build_synthetic_slu``),
from the same seed and weights, with the same buffer size and rehearsal samples per batch; only
the buffer differs (reservoir updated after each experience, or GSS-greedy's selection by
per-sample gradients during training). Each pair is repeated ``--repeats`` times, interleaved.

    .venv/bin/python benchmarks/bench_gss_cost.py                                   # the tiny setting of the tests
    .venv/bin/python benchmarks/bench_gss_cost.py --preset small --per-class 64 --buffer 54 --epochs 1   # near the study's

Measured on the 2-core development machine, shared with other jobs, one thread:

- tiny (tiny model, 16 samples per class, buffer 12, 2 epochs): replay 0.5-1.2 s per
  experience, GSS-greedy 0.9-1.7 s on the first and 1.2-3.5 s on the later ones (1.7-3.5x over
  three repeats; the full buffer rarely takes a replacement, so the per-sample passes are few);
- small model, 64 samples per class, buffer 54 (the study's 1%), 1 epoch: replay 2.0-2.9 s,
  GSS-greedy 8.7-12.2 s per experience (3.7-4.9x);
- the study's own setting (the 40-speaker embedded corpus, small model, buffer of 1% = 54,
  16 rehearsal samples per batch, 1 epoch, its first 3 experiences; measured once with the
  scenario built as ``runs/study-spoken.yaml`` builds it, not by this script): replay 12.9, 25.0,
  25.1 s, GSS-greedy 44.4, 50.7, 53.8 s per experience (3.4x, 2.0x, 2.1x; replay has no buffer
  yet in the first).
"""

from __future__ import annotations

import argparse
import time

import torch

from suite import registry
from suite.continual.entries import SLU_SEQ2SEQ
from suite.continual.options import ContinualTrain, SLUModelOptions
from suite.continual.runner import make_strategy
from suite.continual.synthetic import build_synthetic_slu
from suite.seeding import seed_everything


def seconds_per_experience(method: str, args: argparse.Namespace) -> list[float]:
    seed_everything(0)
    slu = build_synthetic_slu(per_class=(args.per_class, 2, 2), seed=0)
    entry = registry.get("method", method)
    options = entry.options.model_validate({"replay": {"size": args.buffer, "batch_size_mem": args.batch_size_mem}})
    model = SLU_SEQ2SEQ.build(SLUModelOptions(preset=args.preset), vocab_size=len(slu.tokenizer), n_mels=slu.n_mels, pad_id=0)
    train = ContinualTrain(epochs=args.epochs, batch_size=args.batch_size, lr=3e-3, echo=False)
    strategy = make_strategy(entry.run.keywords["make_plugins"], options, slu, model, train, quiet=True)
    times = []
    for experience in slu.benchmark.train_stream:
        started = time.perf_counter()
        strategy.train(experience, eval_streams=[])
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--per-class", type=int, default=16, help="training utterances per class (6 classes, 3 experiences)")
    parser.add_argument("--buffer", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--batch-size-mem", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for _ in range(args.repeats):
        replay, gss = seconds_per_experience("replay", args), seconds_per_experience("gss-greedy", args)
        ratios = [g / r for g, r in zip(gss, replay)]
        print(
            "replay s/exp",
            [round(t, 2) for t in replay],
            "gss-greedy s/exp",
            [round(t, 2) for t in gss],
            "ratio",
            [round(r, 1) for r in ratios],
        )


if __name__ == "__main__":
    main()
