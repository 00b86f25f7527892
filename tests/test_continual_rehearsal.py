"""The rehearsal variants (GDumb, MIR, DER++, ER-ACE): tiny runs that resume exactly, and each one's own mechanism.

The end-to-end runs go through the registry and the runner as the launcher calls them; the
focused tests check what each method adds on the seq2seq model on hand-made cases.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from avalanche.training.plugins import SupervisedPlugin
from continual_runs import Store, context, history
from pydantic import ValidationError
from test_continual_resume import final_weights, stopping

from suite import registry, spec
from suite.continual import der as der_method
from suite.continual import gdumb as gdumb_method
from suite.continual import gss_greedy as gss_method
from suite.continual.der import DERPlugin, pad_stored, token_logit_mse
from suite.continual.entries import SLU_SEQ2SEQ
from suite.continual.er_ace import mask_absent_intents
from suite.continual.gss_greedy import GSSGreedyPlugin, largest_cosine
from suite.continual.mir import MIRPlugin, most_interfered, per_sample_sequence_loss
from suite.continual.options import ContinualTrain, SLUModelOptions
from suite.continual.replay import sample_ids
from suite.continual.runner import make_strategy
from suite.continual.synthetic import build_synthetic_slu
from suite.errors import SpecError
from suite.seeding import seed_everything

torch.set_num_threads(1)
RUNS = Path(__file__).resolve().parents[1] / "runs"

# method -> (its options in the tiny runs, the loss terms it logs besides seq2seq, where the first attempt stops)
CASES = {
    "gdumb": ({"replay": {"size": 12}}, set(), (2, 1)),
    "gdumb at a boundary": ({"replay": {"size": 12}}, set(), (1, 0)),
    "mir": ({"replay": {"size": 12, "batch_size_mem": 4}, "mir": {"subsample": 8}}, {"mir"}, (1, 1)),
    "der": ({}, {"der", "der_ce"}, (2, 1)),
    "er-ace": ({}, set(), (2, 0)),
    "gss-greedy": ({"replay": {"size": 12, "batch_size_mem": 8}, "gss": {"mem_strength": 2}}, set(), (1, 1)),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_trains_logs_its_terms_and_resumes_to_identical_metrics(tmp_path, case):
    method = case.split()[0]
    options, terms, (experience, epoch) = CASES[case]
    store = Store.create(tmp_path)

    def attempt(armed: bool, run_id: str | None = None):
        ctx, entry = context(
            store, stopping(method, experience, epoch, armed), run_id=run_id, method_options=options, resumable=True, checkpoint=False
        )
        return ctx, entry

    ctx, entry = attempt(armed=False)
    reference, reference_id, reference_weights = entry.run(ctx), ctx.tracker.run_id, final_weights(ctx)
    assert 0.0 <= reference["avg_acc"] <= 100.0
    assert [step for step, _ in history(store, reference_id, "avg_acc_seen")] == [0, 1, 2]
    logged = {key.removeprefix("train.loss.") for key in store.client.get_run(reference_id).data.metrics if key.startswith("train.loss.")}
    assert logged == {"seq2seq", *terms}
    for term in terms:  # a rehearsal term appears from experience 1 on (2 epochs each): global epochs 2..5
        assert [step for step, _ in history(store, reference_id, f"train.loss.{term}")] == [2, 3, 4, 5]

    ctx, entry = attempt(armed=True)
    with pytest.raises(RuntimeError, match="stopped at"):
        entry.run(ctx)
    ctx, entry = attempt(armed=False, run_id=ctx.tracker.run_id)
    resumed = entry.run(ctx)

    reference.pop("train_seconds"), resumed.pop("train_seconds")
    assert resumed == reference
    for key in ("avg_acc_seen", "train.loss", *(f"train.loss.{term}" for term in terms)):
        assert history(store, ctx.tracker.run_id, key) == history(store, reference_id, key), key
    weights = final_weights(ctx)
    assert all(torch.equal(weights[name], reference_weights[name]) for name in reference_weights)


KILLED_DER_RUN = """
import os, signal, sys
sys.path.insert(0, {tests!r})
import torch
torch.set_num_threads(1)
from pathlib import Path
import mlflow
from continual_runs import Store, context
from test_continual_resume import stopping
from suite.continual.entries import continual_method

store = Store({uri!r}, mlflow.tracking.MlflowClient({uri!r}), {experiment!r}, Path({root!r}))
entry = stopping("der", 2, 1, armed=False)
make_plugins = entry.run.keywords["make_plugins"]

def killing(options, setup):
    plugins = make_plugins(options, setup)
    plugins[-1].before_training_epoch = lambda strategy, **kw: (
        os.kill(os.getpid(), signal.SIGKILL)
        if strategy.experience.current_experience == 2 and strategy.clock.train_exp_epochs == 1 else None
    )
    return plugins

ctx, killer = context(store, continual_method("der", entry.options, killing, "killed"), run_id={run_id!r}, resumable=True, checkpoint=False)
killer.run(ctx)
"""


@pytest.mark.slow
def test_der_killed_with_sigkill_resumes_with_its_stored_logits_to_the_uninterrupted_metrics(tmp_path):
    store = Store.create(tmp_path)
    ctx, entry = context(store, stopping("der", 2, 1, armed=False), resumable=True, checkpoint=False)
    reference, reference_id = entry.run(ctx), ctx.tracker.run_id
    run_id = store.new_run()
    script = KILLED_DER_RUN.format(
        tests=str(Path(__file__).parent), uri=store.uri, experiment=store.experiment, root=str(tmp_path), run_id=run_id
    )
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, env={**os.environ})
    assert child.returncode == -signal.SIGKILL, child.stderr[-3000:]
    ctx, entry = context(store, stopping("der", 2, 1, armed=False), run_id=run_id, resumable=True, checkpoint=False)
    saved = ctx.checkpoints.load()
    assert saved["position"] == {"experience": 2, "epochs": 1, "evaluated": False}
    assert len(saved["plugins"][0]["logits"]) == 12  # the buffer's stored logits are in the checkpoint
    resumed = entry.run(ctx)
    reference.pop("train_seconds"), resumed.pop("train_seconds")
    assert resumed == reference
    assert history(store, run_id, "train.loss.der") == history(store, reference_id, "train.loss.der")


def method_strategy(method, options, epochs=1, seed=0, per_class=(12, 2, 4)):
    seed_everything(seed)
    slu = build_synthetic_slu(per_class=per_class, seed=seed)
    model = SLU_SEQ2SEQ.build(SLUModelOptions(preset="tiny"), vocab_size=len(slu.tokenizer), n_mels=slu.n_mels, pad_id=0)
    train = ContinualTrain(epochs=epochs, batch_size=8, lr=3e-3, echo=False)
    return make_strategy(method.make_plugins, options, slu, model, train, seed=seed), slu


def plugin_of(strategy, kind):
    return next(p for p in strategy.plugins if isinstance(p, kind))


# ---- GDumb ---------------------------------------------------------------------------------


class FirstBatch(SupervisedPlugin):
    """Keeps, per experience, the model's weights and the adapted dataset's labels when its first epoch starts."""

    def __init__(self):
        super().__init__()
        self.weights, self.labels = [], []

    def before_training_epoch(self, strategy, **kwargs):
        if strategy.clock.train_exp_epochs == 0:
            self.weights.append({name: p.detach().clone() for name, p in strategy.model.state_dict().items()})
            self.labels.append(Counter(int(t) for t in strategy.adapted_dataset.targets))


def test_gdumb_restarts_every_experience_from_the_initial_weights_on_its_class_balanced_buffer():
    options = gdumb_method.GDumbOptions.model_validate({"replay": {"size": 12}, "gdumb": {"passes": 2}})
    strategy, slu = method_strategy(gdumb_method, options, epochs=2)
    initial = {name: p.detach().clone() for name, p in strategy.model.state_dict().items()}
    recorder = FirstBatch()
    strategy.plugins.append(recorder)
    stream = list(slu.benchmark.train_stream)
    for experience in stream:
        strategy.train(experience, eval_streams=[])
        assert any(not torch.equal(p, initial[n]) for n, p in strategy.model.state_dict().items())  # it trained
    for weights in recorder.weights:
        assert all(torch.equal(weights[name], initial[name]) for name in initial)
    seen = set()
    for experience, labels in zip(stream, recorder.labels):  # the buffer alone, twice, equal slots per seen class
        seen |= set(experience.classes_in_this_experience)
        assert set(labels) == seen and sum(labels.values()) == 24 and len(set(labels.values())) == 1


def test_gdumb_clears_the_optimizer_state_of_the_last_experience():
    strategy, slu = method_strategy(gdumb_method, gdumb_method.GDumbOptions.model_validate({"replay": {"size": 12}}))
    first, second = list(slu.benchmark.train_stream)[:2]
    strategy.train(first, eval_streams=[])
    steps = {int(state["step"]) for state in strategy.optimizer.state.values()}
    strategy.train(second, eval_streams=[])
    after = {int(state["step"]) for state in strategy.optimizer.state.values()}
    assert steps == after == {2}  # 12 buffer samples in batches of 8: 2 Adam steps, counted from 0 again (4 if kept)


def test_gdumb_options_are_checked():
    with pytest.raises(ValidationError, match="class_balanced"):
        gdumb_method.GDumbOptions.model_validate({"replay": {"policy": "herding"}})
    with pytest.raises(ValidationError, match="batch_size_mem does not apply"):
        gdumb_method.GDumbOptions.model_validate({"replay": {"batch_size_mem": 4}})
    assert gdumb_method.GDumbOptions().replay.policy == "class_balanced"


# ---- MIR -----------------------------------------------------------------------------------


class BiasOnly(torch.nn.Module):
    """Logits = one learnable vector, the same at every position for every sample (a model a virtual step moves predictably)."""

    def __init__(self, vocab: int):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(vocab))

    def forward(self, x, x_lens, tokens_in):
        return self.bias.expand(tokens_in.size(0), tokens_in.size(1), -1)


def test_mir_retrieves_the_candidates_whose_loss_a_virtual_step_raises_most():
    model = BiasOnly(vocab=5)
    new_targets = torch.tensor([[1, 3], [1, 3]])  # bos=1.. the current batch wants token 3 after bos
    current = per_sample_sequence_loss(model(None, None, new_targets[:, :-1]), new_targets[:, 1:], pad_id=0).mean()
    strategy = SimpleNamespace(model=model, loss=current, optimizer=torch.optim.SGD(model.parameters(), lr=1.0), device="cpu")
    plugin = MIRPlugin.__new__(MIRPlugin)
    plugin.pad_id, plugin.intent_weight, plugin.batch_size_mem = 0, 1.0, 2
    tokens = torch.tensor([[1, 3], [1, 4], [1, 3], [1, 2]])  # candidates 1 and 3 want other tokens: the step toward 3 hurts them
    candidates = [torch.zeros(4, 1, 1), torch.zeros(4), torch.ones(4), tokens]
    chosen = plugin.retrieve(strategy, candidates)
    assert sorted(chosen.tolist()) == [1, 3]
    assert most_interfered(torch.tensor([1.0, 1.0, 1.0]), torch.tensor([1.5, 0.5, 2.0]), 2).tolist() == [2, 0]


def test_per_sample_sequence_loss_averages_each_utterance_over_its_own_tokens():
    logits = torch.randn(2, 3, 4)
    targets = torch.tensor([[1, 2, 3], [2, 0, 0]])
    loss = per_sample_sequence_loss(logits, targets, pad_id=0, intent_weight=2.0)
    token = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
    assert loss[0] == pytest.approx(float((2 * token[0, 0] + token[0, 1] + token[0, 2]) / 4))
    assert loss[1] == pytest.approx(float(token[1, 0]))


# ---- DER++ ---------------------------------------------------------------------------------


def test_der_token_mse_on_a_hand_computed_case():
    logits = torch.tensor([[[1.0, 2.0], [0.0, 0.0]], [[3.0, 1.0], [9.0, 9.0]]])
    stored = torch.tensor([[[0.0, 2.0], [1.0, 1.0]], [[1.0, 1.0], [0.0, 0.0]]])
    valid = torch.tensor([[1.0, 1.0], [1.0, 0.0]])  # sample 1's second position is padding
    # real tokens: (1-0)^2 + 0 ; (0-1)^2 + (0-1)^2 ; (3-1)^2 + 0  = 1 + 2 + 4 = 7 over 3 tokens x 2 classes
    assert float(token_logit_mse(logits, stored, valid)) == pytest.approx(7 / 6)
    padded = pad_stored([torch.ones(2, 3), torch.full((1, 3), 2.0)], 3)
    assert padded.shape == (2, 3, 3) and padded[1, 0].tolist() == [2.0] * 3 and padded[1, 1:].abs().sum() == 0


def test_der_stores_each_buffer_samples_teacher_forced_logits_at_its_own_length():
    options = der_method.DEROptions.model_validate({"replay": {"size": 10}})
    strategy, slu = method_strategy(der_method, options)
    plugin = plugin_of(strategy, DERPlugin)
    strategy.train(slu.benchmark.train_stream[0], eval_streams=[])
    buffer = plugin.storage_policy.buffer
    assert sorted(plugin.logits) == sorted(sample_ids(buffer))
    strategy.model.eval()
    x, _, x_lens, tokens, _ = slu.collate_fn([buffer[i] for i in range(len(buffer))])
    with torch.no_grad():
        logits = strategy.model(x, x_lens, tokens[:, :-1])
    for row, sample_id in enumerate(sample_ids(buffer)):
        length = int((tokens[row, 1:] != 0).sum())
        assert plugin.logits[sample_id].shape == (length, len(slu.tokenizer))
        torch.testing.assert_close(plugin.logits[sample_id], logits[row, :length])


# ---- ER-ACE --------------------------------------------------------------------------------


def test_er_ace_masks_the_absent_intents_of_new_samples_at_the_intent_position_only():
    logits = torch.zeros(3, 2, 8)
    intent_ids = torch.tensor([5, 6, 7])  # tokens 0-4 are specials and words
    intents = torch.tensor([5, 7, 6])  # sample 2 is a rehearsal sample of intent 6
    masked = mask_absent_intents(logits, intents, torch.tensor([0, 1]), intent_ids)
    inf = float("-inf")
    assert masked[0, 0].tolist() == [0, 0, 0, 0, 0, 0, inf, 0] == masked[1, 0].tolist()  # 6 absent among the new samples
    assert torch.equal(masked[2], logits[2])  # rehearsal: full softmax
    assert torch.equal(masked[:, 1], logits[:, 1])  # transcript positions unchanged
    target = torch.tensor([5, 7])
    loss = torch.nn.functional.cross_entropy(masked[:2, 0], target)
    assert float(loss) == pytest.approx(float(torch.log(torch.tensor(7.0))))  # 7 logits left in each softmax


def test_er_ace_refuses_label_smoothing_before_any_run():
    entry = registry.get("method", "er-ace")
    point = SimpleNamespace(model=SimpleNamespace(family="continual"), train_options=ContinualTrain(label_smoothing=0.1))
    with pytest.raises(SpecError, match="train.label_smoothing must be 0"):
        entry.check(point)
    entry.check(SimpleNamespace(model=SimpleNamespace(family="continual"), train_options=ContinualTrain()))


# ---- GSS-greedy ----------------------------------------------------------------------------


def test_largest_cosine_is_the_best_match_per_row():
    memory = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    grads = torch.tensor([[3.0, 0.0], [-1.0, -1.0], [1.0, 1.0]])
    torch.testing.assert_close(largest_cosine(memory, grads), torch.tensor([1.0, -(0.5**0.5), 0.5**0.5]))


def test_gss_fills_its_buffer_from_new_samples_scored_by_gradient_similarity():
    options = gss_method.GSSOptions.model_validate({"replay": {"size": 10, "batch_size_mem": 4}, "gss": {"mem_strength": 2}})
    strategy, slu = method_strategy(gss_method, options)
    plugin = plugin_of(strategy, GSSGreedyPlugin)
    first, second = list(slu.benchmark.train_stream)[:2]
    strategy.train(first, eval_streams=[])
    assert len(plugin.samples) == 10
    assert {label for _, label, _, _ in plugin.samples} <= set(first.classes_in_this_experience)
    assert plugin.scores[:8].tolist() == pytest.approx([0.1] * 8)  # the first batch (8 samples) enters unscored
    assert all(-1.0 <= float(score) <= 1.0 for score in plugin.scores[8:])
    features, _, tokens, _ = plugin.samples[0]
    assert tokens[0] == slu.tokenizer.bos_id and tokens[-1] == slu.tokenizer.eos_id and features.dim() == 2
    strategy.train(second, eval_streams=[])
    assert len(plugin.samples) == 10  # full: replacements only
    assert len(plugin.rehearsed) == 10 and plugin.rehearsed_at == second.current_experience
    with pytest.raises(ValidationError, match="replay.policy does not apply"):
        gss_method.GSSOptions.model_validate({"replay": {"policy": "reservoir"}})


# ---- specs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "override, expected",
    [("method.der.alpha=-1", "alpha"), ("method.mir.subsample=0", "subsample"), ("method.der.gamma=1", "gamma")],
)
def test_bad_method_options_are_spec_errors(override, expected):
    path = RUNS / ("spoken-der.yaml" if "der" in override else "spoken-mir.yaml")
    with pytest.raises(SpecError, match=expected):
        spec.plan(path, overrides=[override], check_data=False)


def suite_continual_methods() -> list[str]:
    """Every continual method the suite itself registers (entry points into suite.continual)."""
    found = registry.registrations("method").values()
    return [r.name for r in found if r.target.startswith("suite.continual.") and registry.get("method", r.name).family == "continual"]


def test_every_continual_method_has_its_spec_and_a_row_in_the_baselines_grid():
    grid = yaml.safe_load((RUNS / "baselines-spoken.yaml").read_text())["grid"]["method"]
    in_grid = [point["name"] for point in grid]
    assert len(in_grid) == len(set(in_grid))
    for name in suite_continual_methods():
        assert spec.plan(RUNS / f"spoken-{name}.yaml", check_data=False).base.method.name == name
        assert name in in_grid, f"{name} is missing from runs/baselines-spoken.yaml"


def test_the_baselines_grid_validates_with_one_percent_buffers():
    names = {point["name"] for point in yaml.safe_load((RUNS / "baselines-spoken.yaml").read_text())["grid"]["method"]}
    missing = names - set(registry.registrations("method"))
    if missing:
        pytest.skip(f"methods registered on another branch: {', '.join(sorted(missing))}")
    plan = spec.plan(RUNS / "baselines-spoken.yaml", check_data=False)
    assert {point.method.name for _, point in plan.points} == names
    for _, point in plan.points:
        replay = getattr(point.method_options, "replay", None)
        assert replay is None or replay.size == 0.01, point.method.name
