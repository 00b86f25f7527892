"""On a CUDA GPU: a tiny continual run and a tiny MCLRec run on ``cuda``, their checkpoints resumed across devices.

Marked ``gpu`` and skipped where torch sees no CUDA device; ``make gpu-check`` runs them (with
the MCLRec benchmark on cuda). What they show, for both families:

- a run trains, evaluates and logs on ``cuda`` end to end;
- a resume checkpoint written by a GPU run resumes on the CPU, and one written on the CPU
  resumes on the GPU: every tensor is loaded onto the resuming run's device
  (``CheckpointStore.load(map_location=...)``), the generator states go back to the CPU
  generators they belong to, and the run finishes with all its experiences (epochs) in the
  same MLflow run. Not *equal* to an uninterrupted run: CUDA and CPU kernels round
  differently, so the exact-resume tests (``test_continual_resume.py``,
  ``test_sequential_resume.py``) stay on one device;
- the logged model (MLflow pytorch flavor) loads with ``mlflow.pytorch.load_model`` on a CPU,
  with the run's final weights, and computes there.

AMP: neither run here uses mixed precision, because neither family has a mixed-precision path.
The continual template (``suite/continual/strategy.py``) trains in the model's dtype, and
MCLRec's ``MetaTrainer`` replaces RecBole's ``_train_epoch``, the only place RecBole applies its
``enable_amp`` autocast and GradScaler (the suite leaves RecBole's ``enable_amp`` off for its
other models too).
"""

from __future__ import annotations

import math
from pathlib import Path

import mlflow
import pytest
import torch
from continual_runs import Store, context, history
from mlflow.tracking import MlflowClient
from run_trackers import new_run_tracker
from test_continual_resume import stopping
from test_sequential_pipeline import write_ring_dataset
from test_sequential_resume import MODELS, Interrupted, _interrupt_at_epoch

from scenarios.recsys.entries import RECBOLE
from suite.api import RunContext
from suite.checkpoints import CheckpointStore
from suite.continual.synthetic import build_synthetic_slu
from suite.seeding import seed_everything
from suite.sequential.train_options import SequentialTrainOptions
from suite.tracking import Tracker

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.slow,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (make gpu-check)"),
]

DIRECTIONS = [("cuda", "cpu"), ("cpu", "cuda")]
EPOCHS = 3


def devices_of(tensors: dict[str, torch.Tensor]) -> set[str]:
    return {value.device.type for value in tensors.values() if isinstance(value, torch.Tensor)}


# ---- continual: the seq2seq SLU model --------------------------------------------------------


def test_continual_run_on_cuda_logs_a_model_that_loads_and_decodes_on_cpu(tmp_path, monkeypatch):
    store = Store.create(tmp_path)
    ctx, entry = context(store, "coconut", resumable=True, device="cuda")
    summary = entry.run(ctx)
    run_id = ctx.tracker.run_id
    assert 0.0 <= summary["avg_acc"] <= 100.0 and math.isfinite(summary["wer"])
    assert [step for step, _ in history(store, run_id, "avg_acc_seen")] == [0, 1, 2]
    final = ctx.checkpoints.load(map_location="cuda")
    assert devices_of(final["model"]) == {"cuda"}
    assert devices_of(ctx.checkpoints.load()["model"]) == {"cpu"}

    model = mlflow.pytorch.load_model(f"{store.client.get_run(run_id).info.artifact_uri}/model")
    assert {parameter.device.type for parameter in model.parameters()} == {"cpu"}
    assert all(torch.equal(value, final["model"][name].cpu()) for name, value in model.state_dict().items())
    slu = build_synthetic_slu(per_class=(16, 2, 6), seed=0)
    dataset = slu.benchmark.test_stream[0].dataset
    x, _, x_lens, tokens, _ = slu.collate_fn([dataset[i] for i in range(len(dataset))])
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # float32 convolutions on both devices for the comparison
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    on_cpu = model(x, x_lens, tokens[:, :-1])
    on_gpu = model.to("cuda")(x.cuda(), x_lens.cuda(), tokens[:, :-1].cuda())
    assert torch.allclose(on_cpu, on_gpu.cpu(), rtol=1e-3, atol=1e-4)  # the same function on either device


@pytest.mark.parametrize("first, second", DIRECTIONS)
@pytest.mark.parametrize("method, stop", [("coconut", (1, 1)), ("ewc", (2, 1))])
def test_continual_checkpoint_resumes_on_the_other_device(tmp_path, method, stop, first, second):
    """COCONUT (replay buffer weights, teacher, projection heads) and EWC (saved parameters, importances) mid-experience."""
    store = Store.create(tmp_path)
    ctx, entry = context(store, stopping(method, *stop, armed=True), resumable=True, checkpoint=False, device=first)
    with pytest.raises(RuntimeError, match="stopped at"):
        entry.run(ctx)
    run_id = ctx.tracker.run_id
    saved = ctx.checkpoints.load(map_location=second)
    assert devices_of(saved["model"]) == {second}
    assert saved["position"] == {"experience": stop[0], "epochs": stop[1], "evaluated": False}

    ctx, entry = context(store, stopping(method, *stop, armed=False), run_id=run_id, resumable=True, checkpoint=False, device=second)
    summary = entry.run(ctx)
    assert ctx.checkpoints.load()["position"] == {"experience": 2, "epochs": 2, "evaluated": True}
    assert [step for step, _ in history(store, run_id, "avg_acc_seen")] == [0, 1, 2]
    assert 0.0 <= summary["avg_acc"] <= 100.0 and math.isfinite(summary["wer"])


# ---- sequential: MCLRec through RecBole's pipeline -------------------------------------------


def mclrec_run(tracker: Tracker, data: Path, run_dir: Path, device: str) -> dict[str, float]:
    """One attempt of a tiny MCLRec child run on ``device`` (as ``test_sequential_resume._run``, device added)."""
    model_entry, model_options, method, method_options = MODELS["mclrec"]
    run_dir.mkdir()
    train = SequentialTrainOptions(epochs=EPOCHS, train_batch_size=64, eval_batch_size=128, topk=[5, 10], num_threads=1, device=device)
    ctx = RunContext(
        seed=0,
        scenario_entry=RECBOLE,
        scenario_options=RECBOLE.options(path=str(data), max_seq_length=10),
        model_entry=model_entry,
        model_options=model_options,
        method_options=method_options,
        train_options=train,
        tracker=tracker,
        run_dir=run_dir,
        cache_dir=run_dir.parent / "cache",
        quiet=True,
        checkpoints=CheckpointStore(tracker, run_dir),
    )
    seed_everything(0)
    return method.run(ctx)


def check_ranking_summary(summary: dict[str, float]) -> None:
    assert set(summary) == {f"test.{metric}@{k}" for metric in ("hit", "ndcg") for k in (5, 10)}
    assert all(0.0 <= value <= 1.0 for value in summary.values())


def test_mclrec_run_on_cuda_logs_a_model_that_loads_and_computes_on_cpu(tmp_path, tracking_uri):
    data = write_ring_dataset(tmp_path / "data")
    tracker = new_run_tracker(tracking_uri, tmp_path, "resume")
    check_ranking_summary(mclrec_run(tracker, data, tmp_path / "run", "cuda"))
    client = MlflowClient(tracking_uri)
    run = client.get_run(tracker.run_id)
    best = torch.load(client.download_artifacts(tracker.run_id, "checkpoints/best.pth", str(tmp_path)), weights_only=True)
    assert devices_of(best["model"]) == {"cpu"}

    model = mlflow.pytorch.load_model(f"{run.info.artifact_uri}/model")
    assert {parameter.device.type for parameter in model.parameters()} == {"cpu"}
    weights = {name: value for name, value in model.state_dict().items() if not name.endswith("_extra_state")}
    assert weights and all(torch.equal(value, best["model"][name]) for name, value in weights.items())
    model.eval()
    sequences = torch.tensor([[1, 2, 3, 0, 0], [4, 5, 6, 7, 8]])
    representation = model(sequences, torch.tensor([3, 5]))
    assert representation.shape == (2, 16) and torch.isfinite(representation).all()


@pytest.mark.parametrize("first, second", DIRECTIONS)
def test_mclrec_checkpoint_resumes_on_the_other_device(first, second, tmp_path, tracking_uri, monkeypatch):
    """Two optimizers, the augmenter's own generator (a CUDA generator's state seeds the CPU one), RecBole's loader generators."""
    data = write_ring_dataset(tmp_path / "data")
    tracker = new_run_tracker(tracking_uri, tmp_path, "resume")
    trained = _interrupt_at_epoch(monkeypatch, 2)
    with pytest.raises(Interrupted):
        mclrec_run(tracker, data, tmp_path / "first", first)
    state = torch.load(tmp_path / "first" / "checkpoints" / "resume.pt", map_location=second, weights_only=True)
    assert state["epoch"] == 1 and devices_of(state["model"]) == {second}
    trained.clear()
    check_ranking_summary(mclrec_run(tracker, data, tmp_path / "second", second))
    assert trained == [2]  # epochs 0 and 1 were not trained again
    steps = [point.step for point in MlflowClient(tracking_uri).get_metric_history(tracker.run_id, "valid_epoch.ndcg_at_10")]
    assert sorted(set(steps)) == [0, 1, 2]
