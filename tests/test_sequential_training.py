"""MCLRec and SASRec through RecBole's real data pipeline and trainers, on a tiny ml-100k subset.

Slow by nature (RecBole builds its datasets); everything runs on 20 users, length 20, 1-2 epochs.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from models.mclrec import MCLRec
from scenarios.recsys.entries import RECBOLE
from suite.api import BuildContext, NoOptions, RunContext
from suite.sequential import entries as P
from suite.sequential.meta_trainer import MetaTrainer
from suite.sequential.pipeline import build_run, config_dict_for
from suite.tracking import Tracker

torch.set_num_threads(1)
USERS, LENGTH = 20, 20


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("seq")


@pytest.fixture(scope="module")
def scenario(workspace: Path):
    options = RECBOLE.options(max_users=USERS, max_seq_length=LENGTH)
    return RECBOLE.build(options, BuildContext(seed=0, cache_dir=workspace / "cache", run_dir=workspace))


def _train(epochs: int = 1) -> P.SequentialTrainOptions:
    return P.SequentialTrainOptions(epochs=epochs, train_batch_size=128, eval_batch_size=256)


def _tracker(tmp: Path) -> Tracker:
    uri = f"sqlite:///{tmp}/m.db"
    client = MlflowClient(uri)
    experiment = client.create_experiment("t", artifact_location=(tmp / "a").as_uri())
    return Tracker(uri, client.create_run(experiment).info.run_id)


def _context(tmp: Path, scenario_options, model, model_options, method_options, train) -> RunContext:
    run_dir = tmp / "run"
    run_dir.mkdir()
    return RunContext(
        seed=0,
        scenario_entry=RECBOLE,
        scenario_options=scenario_options,
        model_entry=model,
        model_options=model_options,
        method_options=method_options,
        train_options=train,
        tracker=_tracker(tmp),
        run_dir=run_dir,
        cache_dir=tmp.parent / "cache",
    )


def test_plain_recbole_pipeline_trains_mclrec_with_the_meta_trainer(workspace: Path, scenario, monkeypatch: pytest.MonkeyPatch) -> None:
    """A RecBole user: Config(model=MCLRec, ...), init_seed, create_dataset, data_preparation, trainer."""
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import init_seed

    cwd = workspace / "plain"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    config_dict = {
        **scenario.config_fragment(),
        "epochs": 1,
        "train_batch_size": 128,
        "eval_batch_size": 256,
        "metrics": ["Hit", "NDCG"],
        "topk": [10],
        "valid_metric": "NDCG@10",
        "gpu_id": "",
        "show_progress": False,
        "seed": 3,
    }
    config = Config(model=MCLRec, dataset=config_dict["dataset"], config_file_list=MCLRec.config_files(), config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    train_data, valid_data, test_data = data_preparation(config, create_dataset(config))
    model = MCLRec(config, train_data._dataset)
    trainer = MetaTrainer(config, model)
    modes = []
    trainer.epoch_listener = lambda kind, epoch, values: modes.append(torch.is_anomaly_enabled())
    torch.autograd.set_detect_anomaly(True)  # what importing RecBole's SINE does to the process
    trainer.fit(train_data, valid_data, saved=True)
    assert modes and not any(modes) and torch.is_anomaly_enabled()  # off while fitting, restored after
    torch.autograd.set_detect_anomaly(False)
    result = trainer.evaluate(test_data, load_best_model=True)
    assert set(result) == {"hit@10", "ndcg@10"} and 0.0 <= result["ndcg@10"] <= result["hit@10"] <= 1.0
    state = torch.load(trainer.saved_model_file, weights_only=True)
    assert {"model", "augmenters", "encoder_optimizer", "augmenter_optimizer", "epoch", "best_valid_score"} <= set(state)
    assert len(model.augmenters) == 2 and trainer.steps_description == "three-step"  # the authors' default
    trainer.resume_checkpoint(trainer.saved_model_file)  # weights-only resume works too
    assert trainer.start_epoch == 1


def test_sasrec_through_the_suite_equals_plain_recbole(workspace: Path, scenario, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same config and seed: RecBole's run_recbole and the suite's pipeline give the same test metrics."""
    from recbole.quick_start import run_recbole

    tmp = workspace / "sasrec"
    tmp.mkdir()
    model_options, train = P.SASRecOptions(), _train(epochs=2)
    ctx = _context(tmp, scenario.options, P.SASREC, model_options, NoOptions(), train)
    cwd = tmp / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    suite_result = P.RECBOLE_TRAINER.run(ctx)
    assert list(cwd.iterdir()) == []  # RecBole wrote nothing into the working directory

    _, fragment = P.SASREC.build(model_options)
    config_dict = config_dict_for(scenario.config_fragment(), fragment, train, 0, tmp / "plain")
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # plain RecBole pickles its Config; only here
    plain = run_recbole(model="SASRec", dataset=config_dict["dataset"], config_dict=config_dict)
    expected = {f"test.{key}": float(value) for key, value in plain["test_result"].items()}
    assert suite_result == expected
    assert set(expected) == {f"test.{m}@{k}" for m in ("hit", "ndcg") for k in (5, 10, 20)}

    assert ctx.tracker.metrics()["test.ndcg_at_10"] == pytest.approx(suite_result["test.ndcg@10"])
    assert [step for step, _ in ctx.tracker.metric_history("valid_epoch.ndcg@10")] == [0, 1]
    assert [step for step, _ in ctx.tracker.metric_history("train.loss")] == [0, 1]
    best = ctx.tracker.download_artifact("checkpoints/best.pth", tmp)
    assert set(torch.load(best, weights_only=True)) >= {"model", "optimizer"}


def _bilevel_trainer(workspace: Path, scenario, name: str, optimization: str = "two-step", **switches):
    run_dir = workspace / name
    run_dir.mkdir()
    cls, fragment = P.MCLREC.build(P.MCLRecOptions(**switches))
    method = {"meta_optimization": optimization}
    config_dict = config_dict_for(scenario.config_fragment(), fragment, _train(), 0, run_dir, method)
    run = build_run(cls, config_dict, MetaTrainer, run_dir)
    return run, next(iter(run.train_data))


def _snapshot(parameters) -> list[torch.Tensor]:
    return [parameter.detach().clone() for parameter in parameters]


def _same(before: list[torch.Tensor], parameters) -> bool:
    return all(torch.equal(a, b) for a, b in zip(before, parameters))


def test_each_step_updates_only_its_own_side(workspace: Path, scenario) -> None:
    run, batch = _bilevel_trainer(workspace, scenario, "steps")
    model, trainer = run.model, run.trainer
    model.train()
    views = model.draw_views(batch)

    encoder, augmenters = _snapshot(model.encoder_parameters()), _snapshot(model.augmenter_parameters())
    losses = trainer.encoder_step(batch, views)
    assert set(losses) == {"rec", "cl1", "cl2", "reg", "total"}
    assert _same(augmenters, model.augmenter_parameters()), "the encoder step moved the augmenters"
    assert not _same(encoder, model.encoder_parameters())

    for parameter in model.parameters():
        parameter.grad = None
    encoder = _snapshot(model.encoder_parameters())
    augmenters = _snapshot(model.augmenter_parameters())
    trainer.augmenter_step(views)
    assert _same(encoder, model.encoder_parameters()), "the augmenter step moved the encoder"
    assert all(parameter.grad is None for parameter in model.encoder_parameters()), "an encoder gradient was computed"
    assert not _same(augmenters, model.augmenter_parameters())


@pytest.mark.parametrize(("optimization", "encoder_updates"), [("three-step", 2), ("two-step", 1)])
def test_three_steps_update_the_encoder_twice_per_batch(workspace: Path, scenario, optimization: str, encoder_updates: int) -> None:
    run, batch = _bilevel_trainer(workspace, scenario, optimization, optimization)
    run.model.train()
    losses = run.trainer.train_batch(batch)
    adam_steps = lambda optimizer: {int(state["step"]) for state in optimizer.state.values()}  # noqa: E731
    assert adam_steps(run.trainer.optimizer) == {encoder_updates}
    assert adam_steps(run.trainer.augmenter_optimizer) == {1}
    assert ("step3_total" in losses) == (encoder_updates == 2)
    assert run.trainer.steps_description == optimization


def test_variants_switch_the_loss_terms(workspace: Path, scenario) -> None:
    run, batch = _bilevel_trainer(workspace, scenario, "variants", use_cl1=False, use_regularizer=False, shared_augmenter=True)
    views = run.model.draw_views(batch)
    assert set(run.model.encoder_loss_terms(batch, views)) == {"rec", "cl2"}
    assert len(run.model.augmenters) == 1
    run.model.eval()  # bucketing by length is exact: causal attention never sees the right padding
    with torch.no_grad():
        full = run.model.forward(batch[run.model.ITEM_SEQ], batch[run.model.ITEM_SEQ_LEN])
        bucketed = run.model.encode_bucketed(batch[run.model.ITEM_SEQ], batch[run.model.ITEM_SEQ_LEN])
    assert torch.allclose(full, bucketed, atol=1e-5)
    cl4srec, fragment = P.CL4SREC.build(P.CL4SRecOptions())
    assert issubclass(cl4srec, MCLRec) and fragment["use_cl2"] is False and fragment["use_regularizer"] is False


def test_mclrec_through_the_suite_logs_terms_and_checkpoint(workspace: Path, scenario, monkeypatch: pytest.MonkeyPatch) -> None:
    tmp = workspace / "mclrec"
    tmp.mkdir()
    ctx = _context(tmp, scenario.options, P.MCLREC, P.MCLRecOptions(), P.MetaTrainerOptions(meta_optimization="three-step"), _train())
    monkeypatch.chdir(tmp)
    result = P.MCLREC_TRAINER.run(ctx)
    assert set(result) == {f"test.{m}@{k}" for m in ("hit", "ndcg") for k in (5, 10, 20)}
    metrics = ctx.tracker.metrics()
    for key in (
        "train.loss_rec",
        "train.loss_cl1",
        "train.loss_cl2",
        "train.loss_reg",
        "train.loss_augmenter_cl2",
        "train.loss_step3_total",
        "valid_epoch.ndcg_at_10",
        "test.hit_at_10",
    ):
        assert key in metrics, key
    assert ctx.tracker.params()["mclrec.optimization"] == "three-step"
    best = ctx.tracker.download_artifact("checkpoints/best.pth", tmp)
    state = torch.load(best, weights_only=True)
    assert {"model", "augmenters", "encoder_optimizer", "augmenter_optimizer"} <= set(state)
    assert sorted(os.listdir(tmp / "run")) == ["log_tensorboard", "saved"]
