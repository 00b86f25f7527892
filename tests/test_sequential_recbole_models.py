"""RecBole's own sequential models through the suite: options from RecBole's YAML, refusals, a smoke run of each.

The smoke runs (``slow``) train every supported model for one epoch on an 8-user ml-100k
subset through RecBole's data pipeline and the suite's trainer, and check the test metrics.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from models.losses import info_nce, same_group_negatives
from scenarios.recsys.entries import RECBOLE
from suite import registry
from suite.api import BuildContext, NoOptions, RunContext
from suite.errors import SpecError
from suite.sequential import entries as P
from suite.sequential import recbole_models as R
from suite.sequential.pipeline import build_run, config_dict_for, evaluate_test, fit
from suite.sequential.recbole_trainer import RecBoleTrainer
from suite.spec import resolve
from suite.tracking import Tracker

torch.set_num_threads(1)
USERS, LENGTH = 8, 20


def _tree(model: dict) -> dict:
    return {
        "experiment": "models",
        "seeds": [0],
        "scenario": {"name": "recbole", "dataset": "ml-100k"},
        "model": model,
        "method": {"name": "recbole-trainer"},
        "train": {"epochs": 1},
    }


def _resolve(model: dict):
    return resolve(_tree(model), "spec.yaml")


def test_every_recbole_sequential_model_is_supported_or_refused_with_a_reason() -> None:
    import recbole.model.sequential_recommender as sequential

    shipped = {name for name in dir(sequential) if isinstance(getattr(sequential, name), type)}
    assert len(shipped) == 31
    assert shipped == set(R.SUPPORTED) | set(R.REFUSED)
    assert not set(R.SUPPORTED) & set(R.REFUSED)
    assert {name.lower() for name in R.SUPPORTED} <= set(registry.registrations("model"))


def test_options_are_recbole_yaml_keys_typed_by_their_declared_types() -> None:
    fearec = R.ENTRIES["FEARec"].options
    assert fearec.model_fields["global_ratio"].annotation is float  # "global_ratio: 1  # (float)"
    assert fearec(global_ratio=0.5).global_ratio == 0.5
    assert R.ENTRIES["NARM"].options().dropout_probs == [0.25, 0.5]
    assert R.ENTRIES["GRU4RecCPR"].options().use_proj_bias is True  # "use_proj_bias: 1  # (bool)"
    assert R.ENTRIES["GCSAN"].options().weight == 0.6  # no declared type: the default's
    assert "train_stage" not in R.ENTRIES["S3Rec"].options.model_fields  # the suite runs both stages
    with pytest.raises(SpecError, match=r"(?i)model.loss_type: input should be 'BPR'"):  # "Range in ['BPR']"
        _resolve({"name": "fpmc", "loss_type": "CE"})
    with pytest.raises(SpecError, match=r"model.dnn_type: input should be 'trm' or 'ave'"):
        _resolve({"name": "core", "dnn_type": "rnn"})


def test_unknown_key_wrong_type_and_code_strings_are_spec_errors() -> None:
    with pytest.raises(SpecError, match=r"unknown key 'model.hiden_size' \(did you mean 'hidden_size'\?\)"):
        _resolve({"name": "gru4rec", "hiden_size": 32})
    with pytest.raises(SpecError, match=r"model.dropout_prob: input should be a valid number"):
        _resolve({"name": "gru4rec", "dropout_prob": "high"})
    with pytest.raises(SpecError, match=r"loss_type = .*__import__.*expected a word"):
        _resolve({"name": "caser", "loss_type": "__import__('os').getcwd()"})
    with pytest.raises(
        SpecError, match=r"unknown key 'zeta' for GRU4Rec; its keys \(RecBole's GRU4Rec.yaml\): embedding_size, hidden_size"
    ):
        _resolve({"name": "recbole", "class": "GRU4Rec", "zeta": 1})
    with pytest.raises(SpecError, match=r"GRU4Rec dropout_prob: input should be a valid number"):
        _resolve({"name": "recbole", "class": "GRU4Rec", "dropout_prob": "high"})


@pytest.mark.parametrize(("name", "reason"), [("GRU4RecF", "item feature fields"), ("KSR", "knowledge graph"), ("DIN", "CTR model")])
def test_models_the_data_cannot_feed_are_refused_with_the_reason(name: str, reason: str) -> None:
    with pytest.raises(SpecError, match=f"RecBole's {name} .*{reason}"):
        _resolve({"name": "recbole", "class": name})
    with pytest.raises(SpecError, match="unknown RecBole sequential model 'GRU5Rec'"):
        _resolve({"name": "recbole", "class": "GRU5Rec"})


def test_the_generic_entry_builds_what_the_named_entry_builds() -> None:
    generic = _resolve({"name": "recbole", "class": "NARM", "hidden_size": 32})
    named = _resolve({"name": "narm", "hidden_size": 32})
    assert generic.model.build(generic.model_options) == named.model.build(named.model_options)
    assert generic.tree["model"]["class"] == "NARM"  # the resolved spec reads back as written
    assert resolve(generic.tree, "again.yaml").model_options.model_extra["hidden_size"] == 32


def test_pairwise_models_get_negative_sampling_and_cross_entropy_none() -> None:
    _, fpmc = R.FPMC.build(R.FPMC.options())
    _, transrec = R.TRANSREC.build(R.TRANSREC.options())
    _, gru = R.GRU4REC.build(R.GRU4REC.options())
    _, gru_bpr = R.GRU4REC.build(R.GRU4REC.options(loss_type="BPR"))
    assert fpmc["train_neg_sample_args"]["sample_num"] == 1 and transrec["train_neg_sample_args"] is not None
    assert gru["train_neg_sample_args"] is None and gru_bpr["train_neg_sample_args"]["distribution"] == "uniform"
    config = config_dict_for({"dataset": "x"}, fpmc, P.SequentialTrainOptions(), 0, Path("/tmp"))
    assert config["train_neg_sample_args"] == fpmc["train_neg_sample_args"]  # the model's choice wins over CE's None


def test_the_baselines_spec_resolves_every_point() -> None:
    from suite.spec import plan

    spec = Path(__file__).parent.parent / "runs" / "baselines-ml100k.yaml"
    launch = plan(spec, check_data=False)
    models = {point.model.name for _, point in launch.points}
    assert models == {"gru4rec", "caser", "sasrec", "bert4rec", "s3rec", "cl4srec", "duorec", "mclrec"}
    assert yaml.safe_load(spec.read_text())["seeds"] == [0, 1, 2]


# -- smoke runs -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("recbole-models")


@pytest.fixture(scope="module")
def scenario(workspace: Path):
    options = RECBOLE.options(max_users=USERS, max_seq_length=LENGTH)
    return RECBOLE.build(options, BuildContext(seed=0, cache_dir=workspace / "cache", run_dir=workspace))


def _context(tmp: Path, scenario_options, model, model_options, train) -> RunContext:
    uri = f"sqlite:///{tmp}/m.db"
    client = MlflowClient(uri)
    experiment = client.create_experiment("t", artifact_location=(tmp / "a").as_uri())
    run_dir = tmp / "run"
    run_dir.mkdir()
    return RunContext(
        seed=0,
        scenario_entry=RECBOLE,
        scenario_options=scenario_options,
        model_entry=model,
        model_options=model_options,
        method_options=NoOptions(),
        train_options=train,
        tracker=Tracker(uri, client.create_run(experiment).info.run_id),
        run_dir=run_dir,
        cache_dir=tmp.parent / "cache",
    )


def _train() -> P.SequentialTrainOptions:
    return P.SequentialTrainOptions(epochs=1, train_batch_size=128, eval_batch_size=256, topk=[10], metrics=["Hit", "NDCG"])


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(R.SUPPORTED) - {"S3Rec"}))
def test_each_supported_model_trains_one_epoch_with_finite_metrics(workspace: Path, scenario, name: str) -> None:
    entry = R.ENTRIES[name]
    model_class, fragment = entry.build(entry.options())
    run_dir = workspace / name
    run_dir.mkdir()
    config_dict = config_dict_for(scenario.config_fragment(), fragment, _train(), 0, run_dir)
    run = build_run(model_class, config_dict, RecBoleTrainer, run_dir)
    assert type(run.model).__name__ == name
    best_valid = fit(run, run_dir)
    test = evaluate_test(run, run_dir)
    assert set(test) == {"hit@10", "ndcg@10"} and set(best_valid) == set(test)
    assert all(math.isfinite(value) and 0.0 <= value <= 1.0 for value in (*test.values(), *best_valid.values()))
    assert test["ndcg@10"] <= test["hit@10"]


@pytest.mark.slow
def test_s3rec_pretrains_then_fine_tunes_from_its_weights(workspace: Path, scenario, monkeypatch: pytest.MonkeyPatch) -> None:
    tmp = workspace / "s3rec"
    tmp.mkdir()
    monkeypatch.chdir(tmp)
    ctx = _context(tmp, scenario.options, R.S3REC, R.S3REC.options(pretrain_epochs=1), _train())
    result = P.RECBOLE_TRAINER.run(ctx)
    assert set(result) == {"test.hit@10", "test.ndcg@10"} and all(math.isfinite(value) for value in result.values())
    assert [step for step, _ in ctx.tracker.metric_history("pretrain.loss")] == [0]
    pretrained = torch.load(tmp / "run" / "saved" / "pretrained.pth", weights_only=True)["state_dict"]
    best = torch.load(ctx.tracker.download_artifact("checkpoints/best.pth", tmp), weights_only=True)["model"]
    # the pre-training heads get no gradient while fine-tuning: they are the pre-trained weights, loaded
    assert torch.equal(best["aap_norm.weight"], pretrained["aap_norm.weight"])
    assert not torch.equal(best["item_embedding.weight"], pretrained["item_embedding.weight"])  # fine-tuned


@pytest.mark.slow
def test_duorec_through_the_suite_logs_its_terms(workspace: Path, scenario, monkeypatch: pytest.MonkeyPatch) -> None:
    tmp = workspace / "duorec"
    tmp.mkdir()
    monkeypatch.chdir(tmp)
    ctx = _context(tmp, scenario.options, P.DUOREC, P.DuoRecOptions(cl_loss="dcl"), _train())
    result = P.RECBOLE_TRAINER.run(ctx)
    assert all(math.isfinite(value) for value in result.values())
    metrics = ctx.tracker.metrics()
    assert {"train.loss_rec", "train.loss_sup"} <= set(metrics) and "train.loss_unsup" not in metrics  # us_x: one term
    assert metrics["train.loss_sup"] > 0


@pytest.mark.slow
def test_duorec_terms_on_a_real_batch_are_the_losses_of_its_views(workspace: Path, scenario) -> None:
    """No dropout: h and its dropout view coincide, and the terms are InfoNCE of the views the model drew."""
    options = P.DuoRecOptions(contrast="us", hidden_dropout_prob=0.0, attn_dropout_prob=0.0)
    model_class, fragment = P.DUOREC.build(options)
    run_dir = workspace / "duorec-terms"
    run_dir.mkdir()
    run = build_run(model_class, config_dict_for(scenario.config_fragment(), fragment, _train(), 0, run_dir), RecBoleTrainer, run_dir)
    model, batch = run.model, next(iter(run.train_data))
    model.train()
    torch.manual_seed(7)
    terms = model.loss_terms(batch)
    torch.manual_seed(7)  # the same supervised positives again
    views = model.encode_views(batch)
    targets = batch[model.POS_ITEM_ID]
    assert torch.allclose(views["h"], views["dropout"], atol=1e-5)
    negatives = same_group_negatives(targets)
    assert terms["unsup"].item() == pytest.approx(0.1 * info_nce(views["h"], views["dropout"], 1.0, negatives).item(), rel=1e-4)
    assert terms["sup"].item() == pytest.approx(0.1 * info_nce(views["h"], views["same_target"], 1.0, negatives).item(), rel=1e-4)
    torch.manual_seed(7)
    positives, _ = model.same_target(targets, batch[model.USER_ID], batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN])
    rows = {tuple(row.tolist()): index for index, row in enumerate(run.train_data._dataset.inter_feat[model.ITEM_SEQ])}
    drawn_targets = run.train_data._dataset.inter_feat[model.POS_ITEM_ID][[rows[tuple(row.tolist())] for row in positives]]
    assert torch.equal(drawn_targets, targets)  # every supervised positive is a training sequence with the same target


def test_the_guard_knows_the_new_string_keys() -> None:
    from suite.sequential.recbole_strings import guard_config

    assert guard_config({"weight_mode": "", "reranker_CAN_NUM": "500,100,20", "pre_model_path": ""})["weight_mode"] == "''"
    refused = (("weight_mode", "os.system"), ("reranker_CAN_NUM", "1+1"), ("pre_model_path", "saved/x.pth"), ("item_attribute", "a b"))
    for key, value in refused:
        with pytest.raises(SpecError, match=f"RecBole config key '{key}'"):
            guard_config({key: value})
    assert R.SASRECCPR.options(reranker_CAN_NUM="500,100,20").reranker_CAN_NUM == "500,100,20"
    with pytest.raises(ValueError, match="partition sizes"):
        R.SASRECCPR.options(reranker_CAN_NUM="500;100")
