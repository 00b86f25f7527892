"""Time the spoken-commands build: from an empty cache, then from the warm one.

Acceptance (issue 3): cold build under 60 s on a 2-core CPU, warm build at least 20x faster.
A benchmark, not a timed test, because the figures depend on the machine's load.

    .venv/bin/python benchmarks/bench_spoken_commands_build.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch


def build(cache: Path, run_dir: Path):
    from scenarios.slu.entries import SPOKEN_COMMANDS
    from suite.api import BuildContext

    options = SPOKEN_COMMANDS.options(cache_dir=str(cache))
    context = BuildContext(seed=0, cache_dir=cache, run_dir=run_dir, quiet=True)
    start = time.perf_counter()
    result = SPOKEN_COMMANDS.build(options, context)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="use (and keep) this cache folder instead of a temporary one; it must be empty")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2, the target machine's cores)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import scenarios.slu.features
    import scenarios.slu.streams  # noqa: F401  (import Avalanche and torchaudio before timing)

    cache = args.keep or Path(tempfile.mkdtemp(prefix="suite-bench-"))
    if any(cache.glob("*")):
        raise SystemExit(f"{cache} is not empty; a cold build needs an empty cache")
    try:
        cold, first = build(cache, cache / "run")
        warm, second = build(cache, cache / "run")
    finally:
        if args.keep is None:
            shutil.rmtree(cache, ignore_errors=True)
    sizes = {name: sum(len(e.dataset) for e in getattr(first.benchmark, f"{name}_stream")) for name in ("train", "valid", "test")}
    print(f"corpus: {len(first.classes)} intents, utterances {sizes}, experiences {first.classes_per_exp}")
    print(f"cold build (synthesis + features + streams): {cold:.2f} s")
    print(f"warm build (cache reused: {second.features_from_cache}): {warm:.3f} s")
    print(f"ratio cold/warm: {cold / warm:.1f}x  (acceptance: cold < 60 s, ratio >= 20)")


if __name__ == "__main__":
    main()
