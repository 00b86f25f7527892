"""Planning a large grid: the registry read once per kind against re-reading it for every lookup.

``suite run``, ``suite tune`` and ``suite show`` plan every grid point of a spec before anything
runs. Each point looks up its scenario, model and method entries; the registry reads every
installed distribution's name and version (a METADATA parse each) once per kind and keeps them.
The baseline is the same planning with that read repeated on every lookup (the registry before
it kept them), run side by side in this process; the ratio is what a user waits less.

    .venv/bin/python benchmarks/bench_spec_plan.py [--spec runs/tune-spoken-coconut.yaml] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from suite import registry
from suite import spec as specs

SPEC = Path(__file__).resolve().parents[1] / "runs" / "tune-spoken-coconut.yaml"


def plan_seconds(path: Path) -> tuple[float, int]:
    start = time.perf_counter()
    plan = specs.plan(path, check_data=False)
    return time.perf_counter() - start, len(plan.points)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=SPEC)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    plan_seconds(args.spec)  # warm-up: the entries' modules imported once, for both variants
    kept, reread = registry._registrations, registry._registrations.__wrapped__
    times: dict[str, list[float]] = {"read once per kind": [], "re-read per lookup (baseline)": []}
    for _ in range(args.rounds):
        for name, function in zip(times, (kept, reread)):
            registry._registrations = function
            seconds, points = plan_seconds(args.spec)
            times[name].append(seconds)
    registry._registrations = kept
    baseline = statistics.median(times["re-read per lookup (baseline)"])
    print(f"{args.spec.name}: {points} grid points, median of {args.rounds} rounds")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:32s} {median:8.3f} s  {median / baseline:6.3f}x the baseline")


if __name__ == "__main__":
    main()
