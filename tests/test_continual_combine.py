"""The composed method: COCONUT + SKD as one spec, its loss the sum of its parts', its spec checked, its run resumable."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from avalanche.training.plugins import SupervisedPlugin
from click.testing import CliRunner
from continual_runs import Store, context

from suite import spec as specs
from suite.cli import main
from suite.continual import coconut as coconut_method
from suite.continual import combine as combine_method
from suite.continual import skd as skd_method
from suite.continual.coconut import CoconutOptions, CoconutPlugin
from suite.continual.combine import CombineOptions
from suite.continual.entries import SLU_SEQ2SEQ
from suite.continual.options import ContinualTrain, SLUModelOptions
from suite.continual.replay import ReplayOptions, Seq2SeqReplayPlugin
from suite.continual.runner import make_strategy
from suite.continual.skd import SKDOptions, SKDPlugin
from suite.continual.synthetic import build_synthetic_slu
from suite.errors import SpecError
from suite.seeding import seed_everything

torch.set_num_threads(1)

REPLAY = {"size": 12, "batch_size_mem": 8}
NSPT, MM, SKD = {"weight": 0.3, "temperature": 0.1}, {"weight": 0.2, "temperature": 0.1}, {"weight": 0.7}
PARTS = {"coconut": {"nspt": NSPT, "mm": MM}, "skd": {"skd": SKD}}
SPEC = """\
experiment: combined
seeds: [0]
scenario: {name: spoken-commands, num_experiences: 3}
model: {name: slu-seq2seq, preset: tiny}
method:
  name: combine
  replay: {size: 0.01, batch_size_mem: 16}
  parts:
    coconut: {nspt: {weight: 0.3}, mm: {weight: 0.3}}
    skd: {skd: {weight: 1.0}}
"""


# ---- the spec ---------------------------------------------------------------------------------


@pytest.fixture
def spec_path(tmp_path: Path) -> Path:
    path = tmp_path / "combined.yaml"
    path.write_text(SPEC)
    return path


def test_the_resolved_spec_fills_each_part_with_its_defaults_and_keeps_the_buffer_shared(spec_path):
    method = specs.plan(spec_path, check_data=False).base.to_dict()["method"]
    assert method["replay"] == {"size": 0.01, "policy": "reservoir", "batch_size_mem": 16}
    assert list(method["parts"]) == ["coconut", "skd"]  # plugin order as listed
    assert method["parts"]["coconut"] == {
        "nspt": {"weight": 0.3, "temperature": 0.1, "variant": "infonce"},
        "mm": {"weight": 0.3, "temperature": 0.1, "variant": "infonce"},
        "skd": {"weight": 0.0},
        "proj_dim": None,
    }
    assert "replay" not in method["parts"]["skd"]
    tuned = specs.plan(spec_path, ["method.parts.skd.skd.weight=0.5"], check_data=False).base.to_dict()
    assert tuned["method"]["parts"]["skd"] == {"skd": {"weight": 0.5}}


def test_the_study_spec_adds_skd_to_exactly_the_coconut_it_is_compared_with():
    plan = specs.plan(Path(__file__).resolve().parents[1] / "runs" / "study-coconut.yaml", check_data=False)
    points = dict(plan.points)
    coconut, combined = points["method=coconut nspt.weight=0.3 mm.weight=0.3"], points["method=combine"]
    assert plan.base.report_baseline == "method=replay" and sorted(plan.base.seeds) == plan.base.seeds and len(plan.base.seeds) >= 11
    alone, parts = coconut.to_dict()["method"], combined.to_dict()["method"]
    assert parts["replay"] == alone.pop("replay") and parts["parts"]["coconut"] == {k: v for k, v in alone.items() if k != "name"}
    assert parts["parts"]["skd"]["skd"]["weight"] > 0
    assert coconut.to_dict()["train"] == combined.to_dict()["train"]


def test_a_part_that_rehearses_gets_replay_defaults_when_no_buffer_is_given():
    options = CombineOptions(parts={"coconut": {}, "skd": {}})
    assert options.replay == ReplayOptions()
    (_, coconut), (_, skd) = combine_method.combined_parts(options)
    assert coconut.replay == skd.replay == ReplayOptions()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("method.parts={coconut: {}}", "at least 2 methods"),
        ("method.parts={combine: {parts: {}}, skd: {}}", "cannot hold another combine"),
        ("method.parts.skd.replay={size: 5}", "part 'skd' sets its own replay"),
        ("method.parts.coconut.skd.weight=0.5", "parts 'coconut' and 'skd' both add the loss term 'skd'"),
        ("method.parts.nosuch={}", "unknown method 'nosuch'"),
        ("method.parts.mclrec-trainer={}", "part 'mclrec-trainer' is not a continual method"),
        ("method.parts.skd.skd.weight=-1", "part 'skd': skd.weight: Input should be greater than or equal to 0"),
        ("method.parts={ewc: {}, lwf: {}}", "replay is set but no part rehearses"),
    ],
)
def test_incompatible_parts_exit_2_with_one_line_naming_the_problem(spec_path, override, message):
    with pytest.raises(SpecError, match="method.parts") as caught:
        specs.plan(spec_path, [override], check_data=False)
    assert message in str(caught.value)
    result = CliRunner().invoke(main, ["show", str(spec_path), "-o", override])
    assert result.exit_code == 2 and message in result.output and len(result.output.strip().splitlines()) == 1


def test_two_plugins_of_one_type_are_refused_when_the_strategy_is_built():
    options = CombineOptions(replay=REPLAY, parts={"skd": {}, "coconut": {}})
    options.parts["coconut"]["skd"]["weight"] = 0.5  # past the spec checks: the build still refuses
    with pytest.raises(SpecError, match="two parts add a SKDPlugin"):
        strategy_for(combine_method, options)


# ---- one batch: the composed loss is the sum of the parts' -----------------------------------


SLU = None


def scenario():
    global SLU
    if SLU is None:
        SLU = build_synthetic_slu(per_class=(12, 2, 4), seed=0)
    return SLU


def strategy_for(method, options, model_state=None, plugin_states=None):
    """A method's strategy on the shared tiny scenario; weights and plugin states loaded when given."""
    seed_everything(0)
    slu = scenario()
    model = SLU_SEQ2SEQ.build(SLUModelOptions(preset="tiny"), vocab_size=len(slu.tokenizer), n_mels=slu.n_mels, pad_id=0)
    if model_state is not None:
        model.load_state_dict(model_state)
    train = ContinualTrain(epochs=1, batch_size=8, lr=3e-3, echo=False)
    strategy = make_strategy(method.make_plugins, options, slu, model, train, seed=0)
    for plugin in strategy.plugins:
        if plugin_states and type(plugin).__name__ in plugin_states:
            plugin.load_state_dict(plugin_states[type(plugin).__name__])
    return strategy


class FirstBatch(SupervisedPlugin):
    """Keeps the total loss and every named term of the first training batch, then stops training."""

    def __init__(self):
        super().__init__()
        self.terms: dict[str, float] = {}

    def after_backward(self, strategy, **kwargs):
        if not self.terms:
            self.terms = {"total": float(strategy.loss), **{name: float(value) for name, value in strategy.loss_terms.items()}}
        strategy.stop_training()


def first_batch_terms(method, options, model_state, plugin_states) -> dict[str, float]:
    strategy = strategy_for(method, options, model_state, plugin_states)
    recorder = FirstBatch()
    strategy.plugins.append(recorder)
    seed_everything(1)  # the same shuffle, hence the same batch, for every method
    strategy.train(scenario().benchmark.train_stream[1], eval_streams=[])
    return recorder.terms


def test_combined_loss_and_each_term_equal_the_parts_computed_separately():
    combined_options = CombineOptions(replay=REPLAY, parts=PARTS)
    warm = strategy_for(combine_method, combined_options)
    warm.train(scenario().benchmark.train_stream[0], eval_streams=[])  # a teacher, heads and a full buffer to share
    states = {type(p).__name__: p.state_dict() for p in warm.plugins if isinstance(p, (Seq2SeqReplayPlugin, CoconutPlugin, SKDPlugin))}
    assert set(states) == {"Seq2SeqReplayPlugin", "CoconutPlugin", "SKDPlugin"}
    model_state = {name: value.clone() for name, value in warm.model.state_dict().items()}

    combined = first_batch_terms(combine_method, combined_options, model_state, states)
    coconut = first_batch_terms(coconut_method, CoconutOptions(replay=REPLAY, nspt=NSPT, mm=MM), model_state, states)
    skd = first_batch_terms(skd_method, SKDOptions(replay=REPLAY, skd=SKD), model_state, states)

    assert set(combined) == {"total", "seq2seq", "nspt", "mm", "skd"}  # the batch holds rehearsal and new samples
    assert set(coconut) == {"total", "seq2seq", "nspt", "mm"} and set(skd) == {"total", "seq2seq", "skd"}
    assert combined["seq2seq"] == pytest.approx(coconut["seq2seq"], rel=1e-6) == pytest.approx(skd["seq2seq"], rel=1e-6)
    for term in ("nspt", "mm"):
        assert combined[term] == pytest.approx(coconut[term], rel=1e-6), term
    assert combined["skd"] == pytest.approx(skd["skd"], rel=1e-6)
    assert combined["nspt"] > 0 and combined["mm"] > 0 and combined["skd"] > 0
    parts_summed = coconut["total"] + skd["total"] - skd["seq2seq"]  # the seq2seq loss counted once
    assert combined["total"] == pytest.approx(parts_summed, rel=1e-6)
    weighted = combined["seq2seq"] + NSPT["weight"] * combined["nspt"] + MM["weight"] * combined["mm"] + SKD["weight"] * combined["skd"]
    assert combined["total"] == pytest.approx(weighted, rel=1e-6)


def test_combined_coconut_and_skd_train_exactly_as_coconut_with_its_own_skd_weight():
    """The same plugins in the same order: a run of one is a run of the other, weight for weight."""
    finals = []
    for method, options in (
        (combine_method, CombineOptions(replay=REPLAY, parts=PARTS)),
        (coconut_method, CoconutOptions(replay=REPLAY, nspt=NSPT, mm=MM, skd=SKD)),
    ):
        strategy = strategy_for(method, options)
        assert [type(p).__name__ for p in strategy.plugins[:3]] == ["Seq2SeqReplayPlugin", "CoconutPlugin", "SKDPlugin"]
        for experience in list(scenario().benchmark.train_stream)[:2]:
            strategy.train(experience, eval_streams=[])
        finals.append(strategy.model.state_dict())
    assert all(torch.equal(finals[0][name], finals[1][name]) for name in finals[0])


# ---- a run through the registry, stopped and resumed -----------------------------------------


@pytest.mark.slow
def test_combined_run_logs_every_part_term_and_resumes_to_the_uninterrupted_metrics(tmp_path):
    from test_continual_resume import stopping

    from suite.continual.combine import NAME

    store = Store.create(tmp_path)
    options = {"parts": PARTS}
    ctx, entry = context(store, stopping(NAME, 1, 1, armed=False), method_options=options, resumable=True, checkpoint=False)
    reference, reference_id = entry.run(ctx), ctx.tracker.run_id
    logged = store.client.get_run(reference_id).data.metrics
    assert {"train.loss.nspt", "train.loss.mm", "train.loss.skd"} <= set(logged)

    ctx, entry = context(store, stopping(NAME, 1, 1, armed=True), method_options=options, resumable=True, checkpoint=False)
    with pytest.raises(RuntimeError, match="stopped at"):
        entry.run(ctx)
    run_id = ctx.tracker.run_id
    ctx, entry = context(store, stopping(NAME, 1, 1, armed=False), run_id=run_id, method_options=options, resumable=True, checkpoint=False)
    resumed = entry.run(ctx)
    reference.pop("train_seconds"), resumed.pop("train_seconds")
    assert resumed == reference


@pytest.mark.slow
def test_a_launch_of_coconut_against_coconut_plus_skd_exports_and_tabulates(fsc_root, tracking_uri, tmp_path):
    """The chain a study takes: `suite run` with the composed method in a grid, `suite export`, the README table."""
    import json

    from mlflow.tracking import MlflowClient

    from suite.export import read_results
    from suite.readme_tables import Block, render_block

    spec = tmp_path / "pair.yaml"
    spec.write_text(
        "experiment: pair\nseeds: [0, 1]\n"
        f"scenario: {{name: fsc, root: {fsc_root}, num_experiences: 2, features: {{n_mels: 20}}}}\n"
        "model: {name: slu-seq2seq, preset: tiny}\nmethod: {name: coconut}\n"
        "train: {epochs: 1, batch_size: 4, num_threads: 1, checkpoint: false, echo: false}\n"
        "grid:\n  method:\n"
        "    - {name: coconut, replay: {size: 4, batch_size_mem: 2}}\n"
        "    - {name: combine, replay: {size: 4, batch_size_mem: 2}, parts: {coconut: {}, skd: {skd: {weight: 0.5}}}}\n"
        "report: {metrics: [avg_acc, last_acc], baseline: method=coconut}\n"
    )
    ran = CliRunner().invoke(main, ["run", str(spec), "-q"])
    assert ran.exit_code == 0, ran.output
    out = tmp_path / "results" / "pair.csv"
    exported = CliRunner().invoke(main, ["export", "pair", "--out", str(out)])
    assert exported.exit_code == 0, exported.output
    rows = read_results(out)
    assert rows[["label", "seed"]].values.tolist() == [[f"method={name}", seed] for name in ("coconut", "combine") for seed in "01"]
    combined = rows[rows["label"] == "method=combine"].iloc[0]
    assert combined["params.method.parts.skd.skd.weight"] == "0.5" and combined["params.method.replay.size"] == "4"
    assert rows[rows["label"] == "method=coconut"]["params.method.parts.skd.skd.weight"].tolist() == ["", ""]
    params = MlflowClient(tracking_uri).get_run(combined["run_id"]).data.params
    assert json.loads(params["derived.plugins"]) == ["Seq2SeqReplayPlugin", "CoconutPlugin", "SKDPlugin"]
    table = render_block(Block.parse('results/pair.csv metrics=avg_acc,last_acc baseline="method=coconut"', "README"), tmp_path)
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines() if line.startswith("| method=")]
    assert [row[:2] for row in rows] == [["method=coconut", "2"], ["method=combine", "2"]] and rows[0][-1] == "baseline"
