"""Measure NDCG@10 and HR@10 of SASRec, CL4SRec and MCLRec on ml-100k through the suite's pipeline.

Each (model, seed) is one suite run (the same pipeline ``suite run`` uses), logged into a
local SQLite MLflow store under ``--out``; the summary prints mean +- std over seeds with the
epoch budget. Usage:

    python benchmarks/measure_ml100k.py --epochs 1 --seeds 0 1 --out /tmp/measure
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from mlflow.tracking import MlflowClient

from scenarios.recsys.plugins import RECBOLE
from suite.plugins import NoOptions, RunContext
from suite.sequential import plugins as P
from suite.tracking import Tracker

VARIANTS = {
    "sasrec": (P.SASREC, P.SASRecOptions, P.RECBOLE_TRAINER, NoOptions),
    "cl4srec": (P.CL4SREC, P.CL4SRecOptions, P.RECBOLE_TRAINER, NoOptions),
    "mclrec": (P.MCLREC, P.MCLRecOptions, P.MCLREC_TRAINER, P.MetaTrainerOptions),
}


def run_one(name: str, seed: int, epochs: int, out: Path, uri: str, experiment: str) -> dict[str, float]:
    model, model_options, method, method_options = VARIANTS[name]
    client = MlflowClient(uri)
    run = client.create_run(experiment, run_name=f"{name} seed={seed}")
    tracker = Tracker(uri, run.info.run_id)
    with tempfile.TemporaryDirectory(prefix="measure-") as run_dir:
        ctx = RunContext(
            seed=seed, scenario_plugin=RECBOLE, scenario_options=RECBOLE.options(), model_plugin=model,
            model_options=model_options(), method_options=method_options(),
            train_options=P.SequentialTrainOptions(epochs=epochs), tracker=tracker, run_dir=Path(run_dir), cache_dir=out / "cache",
        )
        started = time.perf_counter()
        result = method.run(ctx)
        result["wall_s"] = time.perf_counter() - started
    tracker.end()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--models", nargs="+", default=list(VARIANTS))
    parser.add_argument("--out", type=Path, default=Path("measure-ml100k"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{args.out.resolve()}/mlflow.db"
    client = MlflowClient(uri)
    found = client.get_experiment_by_name("measure-ml100k")
    experiment = found.experiment_id if found else client.create_experiment("measure-ml100k", artifact_location=(args.out.resolve() / "artifacts").as_uri())
    for seed in args.seeds:
        for name in args.models:
            result = run_one(name, seed, args.epochs, args.out, uri, experiment)
            record = {"model": name, "seed": seed, "epochs": args.epochs, **result}
            with (args.out / "results.jsonl").open("a") as handle:
                handle.write(json.dumps(record) + "\n")
            print(json.dumps(record), flush=True)
    summarize(args.out / "results.jsonl")


def summarize(path: Path) -> None:
    """Mean +- std over seeds of HR@10 and NDCG@10 per model (and epoch budget)."""
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    groups: dict[tuple[str, int], list[dict]] = {}
    for record in records:
        groups.setdefault((record["model"], record["epochs"]), []).append(record)
    for (name, epochs), rows in sorted(groups.items()):
        parts = [f"{name:8s} epochs={epochs} seeds={sorted(r['seed'] for r in rows)}"]
        for key in ("test.hit@10", "test.ndcg@10"):
            values = [r[key] for r in rows]
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            parts.append(f"{key}={statistics.mean(values):.4f}+-{std:.4f}")
        parts.append(f"wall={statistics.mean(r['wall_s'] for r in rows):.0f}s")
        print("  ".join(parts))


if __name__ == "__main__":
    main()
