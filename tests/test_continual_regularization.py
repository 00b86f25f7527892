"""Avalanche's regularization (SI, MAS, RWalk) and gradient-projection (A-GEM, GEM) strategies on the seq2seq model.

Each method trains a tiny run of two experiences through its registry entry and the runner, logs
its term (``train.loss.<term>``) in the second experience, and, stopped within the second
experience and resumed from its checkpoint, ends exactly as the run that never stopped. The
pieces the files add to Avalanche (the episodic memory's resumable draws, GEM's and A-GEM's
projections on a model's gradients) and the options are checked on their own.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from continual_runs import Store, context, history
from test_continual_resume import stopping

from suite import registry, spec
from suite.api import NoOptions, ScenarioEntry
from suite.continual.episodic_memory import EpisodicMemory
from suite.continual.synthetic import build_synthetic_slu
from suite.errors import SpecError

torch.set_num_threads(1)

RUNS = Path(__file__).resolve().parents[1] / "runs"
TERMS = {"si": "si", "mas": "mas", "rwalk": "rwalk", "agem": "agem", "gem": "gem"}
"""Each method and the term it logs as ``train.loss.<term>``: its penalty before its weight, or (A-GEM, GEM) the memory's loss."""

TWO_EXPERIENCES = ScenarioEntry(
    name="synthetic-slu",
    family="continual",
    options=NoOptions,
    build=lambda options, build: build_synthetic_slu(num_classes=4, num_experiences=2, per_class=(12, 2, 4), seed=build.seed),
)


def test_every_method_is_a_registered_continual_method():
    for method in TERMS:
        entry = registry.get("method", method)
        assert entry.family == "continual" and entry.name == method
        assert spec.plan(RUNS / f"spoken-{method}.yaml").base.method.name == method


STOPS = [(method, (1, 1)) for method in TERMS] + [("si", (1, 0)), ("rwalk", (1, 0))]
"""Where the first attempt stops: within the second experience for every method; at its start for the two whose
experience-start bookkeeping must run after a restore at a boundary and not after one within an experience."""


@pytest.mark.slow
@pytest.mark.parametrize("method, stop", STOPS, ids=[f"{method}-{'within' if stop[1] else 'boundary'}" for method, stop in STOPS])
def test_tiny_run_logs_its_term_and_resumes_to_identical_metrics(tmp_path, method, stop):
    store = Store.create(tmp_path)
    experience, epoch = stop

    def attempt(armed: bool, run_id: str | None = None):
        return context(
            store, stopping(method, experience, epoch, armed), run_id=run_id, scenario=TWO_EXPERIENCES, resumable=True, checkpoint=False
        )

    ctx, entry = attempt(armed=False)
    reference, reference_id = entry.run(ctx), ctx.tracker.run_id
    reference_weights = ctx.checkpoints.load()["model"]
    term = f"train.loss.{TERMS[method]}"
    logged = history(store, reference_id, term)
    assert [step for step, _ in logged] == [2, 3]  # the second experience's two epochs: no penalty or memory before it
    assert all(value > 0 for _, value in logged), logged
    assert [step for step, _ in history(store, reference_id, "avg_acc_seen")] == [0, 1]

    ctx, entry = attempt(armed=True)
    with pytest.raises(RuntimeError, match="stopped at"):
        entry.run(ctx)
    run_id = ctx.tracker.run_id
    assert ctx.checkpoints.load()["position"] == (
        {"experience": 1, "epochs": 1, "evaluated": False} if epoch else {"experience": 0, "epochs": 2, "evaluated": True}
    )
    ctx, entry = attempt(armed=False, run_id=run_id)
    resumed = entry.run(ctx)

    reference.pop("train_seconds"), resumed.pop("train_seconds")
    assert resumed == reference
    for key in ("avg_acc_seen", "wer_seen", "train.loss", "train.loss.seq2seq", term):
        assert history(store, run_id, key) == history(store, reference_id, key), key
    weights = ctx.checkpoints.load()["model"]
    assert all(torch.equal(weights[name], reference_weights[name]) for name in reference_weights)


@pytest.mark.slow
def test_coconut_with_dcl_losses_trains_and_its_terms_differ_from_infonce(tmp_path):
    store = Store.create(tmp_path)
    runs = {}
    for variant in ("infonce", "dcl"):
        options = {"nspt": {"weight": 0.1, "variant": variant}, "mm": {"weight": 0.1, "variant": variant}}
        ctx, entry = context(store, "coconut", scenario=TWO_EXPERIENCES, method_options=options, checkpoint=False)
        summary = entry.run(ctx)
        assert 0.0 <= summary["avg_acc"] <= 100.0
        runs[variant] = {key: history(store, ctx.tracker.run_id, key) for key in ("train.loss.mm", "train.loss.nspt")}
    assert [step for step, _ in runs["dcl"]["train.loss.nspt"]] == [2, 3]  # NSPT from the second experience on
    assert runs["dcl"]["train.loss.mm"][0][1] != runs["infonce"]["train.loss.mm"][0][1]  # the option reaches the loss


def test_episodic_memory_draws_the_same_samples_after_a_restore():
    slu = build_synthetic_slu(num_classes=4, num_experiences=2, per_class=(12, 2, 4), seed=0)
    stream = slu.benchmark.train_stream
    memory = EpisodicMemory(5, stream, seed=3)
    memory.add(stream[0])
    memory.add(stream[1])
    assert [len(dataset) for dataset in memory.datasets] == [5, 5]
    memory.sample(4)
    saved = memory.state_dict()
    restored = EpisodicMemory(5, stream, seed=99)
    restored.load_state_dict(saved)
    for ours, theirs in zip(memory.sample(4), restored.sample(4)):
        assert torch.equal(ours[0], theirs[0]) and ours[1] == theirs[1]
    labels = {int(item[1]) for item in memory.sample(4)}
    assert labels & set(stream[0].classes_in_this_experience) and labels & set(stream[1].classes_in_this_experience)


def _strategy_with_gradient(gradient: torch.Tensor, counter: int = 1) -> SimpleNamespace:
    model = torch.nn.Linear(gradient.numel() - 1, 1)
    model.weight.grad = gradient[:-1].view_as(model.weight).clone()
    model.bias.grad = gradient[-1:].clone()
    return SimpleNamespace(model=model, device="cpu", clock=SimpleNamespace(train_exp_counter=counter))


def _gradient(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.view(-1) for p in model.parameters()])


def test_gem_projection_keeps_every_past_loss_from_rising():
    from suite.continual.gem import Seq2SeqGEMPlugin

    torch.manual_seed(0)
    plugin = Seq2SeqGEMPlugin(4, memory_strength=0.0, collate_fn=None, pad_id=0, experiences=[], seed=0)
    plugin.G = torch.randn(3, 6)
    g = -plugin.G.sum(0) + 0.1 * torch.randn(6)  # against every past experience's gradient
    assert (plugin.G @ g < 0).any()
    strategy = _strategy_with_gradient(g)
    plugin.after_backward(strategy)
    projected = _gradient(strategy.model)
    assert (plugin.G @ projected >= -1e-3 * plugin.G.norm(dim=1)).all()
    assert (projected - g).norm() <= g.norm()  # no farther from g than the feasible zero gradient


def test_agem_projection_removes_the_component_against_the_reference():
    from suite.continual.agem import Seq2SeqAGEMPlugin

    plugin = Seq2SeqAGEMPlugin(4, 2, collate_fn=None, pad_id=0, experiences=[], seed=0)
    plugin.memory.datasets.append([0])  # one experience in memory: A-GEM projects
    plugin.reference_gradients = torch.tensor([1.0, 0.0, 0.0])
    strategy = _strategy_with_gradient(torch.tensor([-2.0, 1.0, 3.0]))
    plugin.after_backward(strategy)
    assert torch.allclose(_gradient(strategy.model), torch.tensor([0.0, 1.0, 3.0]))
    agreeing = _strategy_with_gradient(torch.tensor([2.0, 1.0, 3.0]))
    plugin.after_backward(agreeing)
    assert torch.equal(_gradient(agreeing.model), torch.tensor([2.0, 1.0, 3.0]))  # no conflict: left as it is


BAD_OPTIONS = [
    ("spoken-si.yaml", "method.si_lambda=-1", "method.si_lambda"),
    ("spoken-si.yaml", "method.eps=0", "method.eps"),
    ("spoken-mas.yaml", "method.alpha=1.5", "method.alpha"),
    ("spoken-rwalk.yaml", "method.delta_t=0", "method.delta_t"),
    ("spoken-rwalk.yaml", "method.ewc_alpha=2", "method.ewc_alpha"),
    ("spoken-agem.yaml", "method.sample_size=0", "method.sample_size"),
    ("spoken-agem.yaml", "method.patterns_per_experience=many", "method.patterns_per_experience"),
    ("spoken-gem.yaml", "method.memory_strength=-0.5", "method.memory_strength"),
    ("spoken-gem.yaml", "method.sample_size=8", "unknown key 'method.sample_size'"),
    ("spoken-coconut.yaml", "method.nspt.variant=dcw", "method.nspt.variant: input should be 'infonce' or 'dcl'"),
    ("spoken-coconut.yaml", "method.mm.variant=nce", "method.mm.variant"),
]


@pytest.mark.parametrize("name, override, expected", BAD_OPTIONS, ids=[override for _, override, _ in BAD_OPTIONS])
def test_a_bad_option_is_a_spec_error_naming_its_key(name, override, expected):
    with pytest.raises(SpecError, match=re.escape(expected)):
        spec.plan(RUNS / name, [override])


def test_the_dcl_variant_is_a_coconut_option():
    point = spec.plan(RUNS / "spoken-coconut.yaml", ["method.nspt.variant=dcl"]).base
    assert point.method_options.nspt.variant == "dcl" and point.method_options.mm.variant == "infonce"
