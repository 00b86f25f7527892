"""Time the spoken-commands build: synthesis, features, then a warm build from the cache.

Acceptance (issue 3): the default corpus's cold build under 60 s on a 2-core CPU, the warm
build at least 20x faster. Issue 8.2: the study-sized corpus (``--study``) is timed the same
way. The warm build includes the integrity checks (sha256 of every wav against the corpus
manifest, XXH3 of every cached feature array), and their cost is printed on its own line.
A benchmark, not a timed test, because the figures depend on the machine's load.

    .venv/bin/python benchmarks/bench_spoken_commands_build.py [--study] [--speakers N ...] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch

STUDY = {"speakers": 40, "valid_speakers": 4, "test_speakers": 8, "phrasings_per_intent": 6, "num_experiences": 8}


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="use (and keep) this cache folder instead of a temporary one; it must be empty")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2, the target machine's cores)")
    parser.add_argument("--workers", type=int, default=2, help="synthesis worker processes (scenario.synth_workers, default 2)")
    parser.add_argument("--study", action="store_true", help=f"the recommended study setting: {STUDY}")
    parser.add_argument("--speakers", type=int)
    parser.add_argument("--valid-speakers", type=int)
    parser.add_argument("--test-speakers", type=int)
    parser.add_argument("--phrasings", type=int, dest="phrasings_per_intent")
    parser.add_argument("--n-mels", type=int, default=40, help="filterbank bins (default 40, as the spoken-* specs)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from scenarios.slu.entries import SPOKEN_COMMANDS, corpus_spec
    from scenarios.slu.features import file_digest
    from scenarios.slu.spoken_commands import ensure_corpus, verify_corpus
    from suite.api import BuildContext

    sizes = dict(STUDY) if args.study else {}
    sizes.update({k: v for k in ("speakers", "valid_speakers", "test_speakers", "phrasings_per_intent") if (v := getattr(args, k))})
    cache = args.keep or Path(tempfile.mkdtemp(prefix="suite-bench-"))
    if any(cache.glob("*")):
        raise SystemExit(f"{cache} is not empty; a cold build needs an empty cache")
    options = SPOKEN_COMMANDS.options(cache_dir=str(cache), synth_workers=args.workers, features={"n_mels": args.n_mels}, **sizes)
    context = BuildContext(seed=0, cache_dir=cache, run_dir=cache / "run", quiet=True)
    try:
        synthesis, (directory, manifest) = timed(ensure_corpus, cache, corpus_spec(options), workers=args.workers)
        features, first = timed(SPOKEN_COMMANDS.build, options, context)
        warm, second = timed(SPOKEN_COMMANDS.build, options, context)
        corpus_check, _ = timed(verify_corpus, directory, corpus_spec(options))
        arrays = sorted(first.feature_cache_dir.glob("*.npy"))
        feature_check, _ = timed(lambda: [file_digest(path) for path in arrays])
        feature_bytes = sum(path.stat().st_size for path in arrays)
        wav_bytes = sum(path.stat().st_size for path in directory.rglob("*.wav"))
    finally:
        if args.keep is None:
            shutil.rmtree(cache, ignore_errors=True)
    counts, speakers = manifest["counts"]["utterances"], manifest["counts"]["speakers"]
    print(f"options: {options.model_dump(exclude={'cache_dir'}, exclude_defaults=True)}")
    print(f"corpus: {len(first.classes)} intents, speakers {speakers}, utterances {counts}, experiences {first.classes_per_exp}")
    print(f"synthesis ({sum(counts.values())} utterances, {args.workers} workers): {synthesis:.1f} s")
    print(f"features and streams (corpus reused): {features:.1f} s")
    print(f"cold build in all: {synthesis + features:.1f} s")
    print(f"warm build (cache reused: {second.features_from_cache}): {warm:.3f} s")
    print(f"  of which corpus check (sha256 of {wav_bytes / 2**20:.0f} MiB of wav): {corpus_check:.3f} s")
    print(f"  of which feature check (XXH3 of {feature_bytes / 2**20:.0f} MiB of arrays): {feature_check:.3f} s")
    print(f"ratio cold/warm: {(synthesis + features) / warm:.1f}x  (acceptance for the default corpus: cold < 60 s, ratio >= 20)")


if __name__ == "__main__":
    main()
