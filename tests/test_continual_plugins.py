"""Replay buffers, the rehearsal/new split of a batch, and the frozen teacher of COCONUT."""

from collections import Counter

import pytest
import torch
from avalanche.training.plugins import SupervisedPlugin

from suite.continual import coconut as coconut_method
from suite.continual import replay as replay_method
from suite.continual.coconut import CoconutOptions, CoconutPlugin
from suite.continual.entries import SLU_SEQ2SEQ
from suite.continual.options import ContinualTrain, SLUModelOptions
from suite.continual.replay import ReplayMethodOptions, ReplayOptions, Seq2SeqReplayPlugin, buffer_size
from suite.continual.runner import make_strategy
from suite.continual.synthetic import build_synthetic_slu
from suite.seeding import seed_everything

torch.set_num_threads(1)


class BatchRecorder(SupervisedPlugin):
    """Keeps, for every training batch, the labels and the strategy's rehearsal mask."""

    def __init__(self):
        super().__init__()
        self.batches = []

    def before_backward(self, strategy, **kwargs):
        self.batches.append((strategy.clock.train_exp_counter, strategy.mb_y.clone(), strategy.rehearsal_mask.clone()))


def method_strategy(method, options, epochs=1, seed=0):
    seed_everything(seed)
    slu = build_synthetic_slu(per_class=(12, 2, 4), seed=seed)
    model = SLU_SEQ2SEQ.build(SLUModelOptions(preset="tiny"), vocab_size=len(slu.tokenizer), n_mels=slu.n_mels, pad_id=0)
    train = ContinualTrain(epochs=epochs, batch_size=8, lr=3e-3, echo=False)
    return make_strategy(method.make_plugins, options, slu, model, train, seed=seed), slu


class TermRecorder(SupervisedPlugin):
    """Keeps the loss terms of every training batch (the template's ``loss_terms``)."""

    def __init__(self):
        super().__init__()
        self.batches = []

    def after_backward(self, strategy, **kwargs):
        self.batches.append({name: float(value) for name, value in strategy.loss_terms.items()})

    @property
    def names(self):
        return [set(batch) for batch in self.batches]

    def values(self, name):
        return [batch[name] for batch in self.batches]


def plugin_of(strategy, kind):
    return next(p for p in strategy.plugins if isinstance(p, kind))


def test_buffer_size_count_or_fraction():
    assert buffer_size(200, 10_000) == 200
    assert buffer_size(0.01, 23_132) == 231
    assert buffer_size(0.02, 23_132) == 463
    with pytest.raises(ValueError):
        ReplayOptions(size=1.5)
    with pytest.raises(ValueError):
        ReplayOptions(size=0)


def test_replay_batches_mix_new_and_rehearsal_samples_and_the_mask_marks_old_classes():
    strategy, slu = method_strategy(replay_method, ReplayMethodOptions(replay=ReplayOptions(size=12)))
    recorder = BatchRecorder()
    strategy.plugins.append(recorder)
    seen_classes = set()
    for experience in slu.benchmark.train_stream:
        strategy.train(experience, eval_streams=[])
        seen_classes |= set(experience.classes_in_this_experience)
    order = [set(e.classes_in_this_experience) for e in slu.benchmark.train_stream]
    for exp_index, labels, mask in recorder.batches:
        old = set().union(*order[:exp_index]) if exp_index else set()
        expected = torch.tensor([int(y) in old for y in labels])
        assert torch.equal(mask, expected)
        if exp_index == 0:
            assert not mask.any()
    later = [(labels, mask) for e, labels, mask in recorder.batches if e > 0]
    assert all(mask.any() and (~mask).any() for _, mask in later)  # every batch holds both kinds
    buffer = plugin_of(strategy, Seq2SeqReplayPlugin).storage_policy.buffer
    assert len(buffer) == 12
    assert set(int(t) for t in buffer.targets) <= seen_classes


@pytest.mark.parametrize("policy", ["class_balanced", "herding"])
def test_balanced_policies_give_equal_slots_per_class(policy):
    strategy, slu = method_strategy(replay_method, ReplayMethodOptions(replay=ReplayOptions(size=12, policy=policy)))
    for experience in list(slu.benchmark.train_stream)[:2]:
        strategy.train(experience, eval_streams=[])
    buffer = plugin_of(strategy, Seq2SeqReplayPlugin).storage_policy.buffer
    counts = Counter(int(t) for t in buffer.targets)
    assert len(counts) == 4 and set(counts.values()) == {3}


def test_herding_picks_the_sample_closest_to_the_class_mean_first():
    strategy, _slu = method_strategy(replay_method, ReplayMethodOptions(replay=ReplayOptions(size=6, policy="herding")))
    policy = plugin_of(strategy, Seq2SeqReplayPlugin).storage_policy
    features = torch.tensor([[0.0, 0.0], [1.0, 1.0], [-1.0, -1.0], [5.0, 5.0]])
    assert policy.selection_strategy.make_sorted_indices_from_features(features)[0] == 1  # mean is (1.25, 1.25)


def test_coconut_teacher_is_frozen_and_nspt_waits_for_it():
    options = CoconutOptions(replay=ReplayOptions(size=12))
    strategy, slu = method_strategy(coconut_method, options)
    coconut = plugin_of(strategy, CoconutPlugin)
    terms = TermRecorder()
    strategy.plugins.append(terms)
    first, second = list(slu.benchmark.train_stream)[:2]
    strategy.train(first, eval_streams=[])
    assert terms.names == [{"seq2seq", "mm"}] * len(terms.names)  # no teacher in experience 0: no NSPT; MM on
    assert all(value > 0 for value in terms.values("mm"))
    teacher = coconut.teacher
    before = {name: p.detach().clone() for name, p in teacher.named_parameters()}
    terms.batches.clear()
    strategy.train(second, eval_streams=[])
    assert terms.names == [{"seq2seq", "mm", "nspt"}] * len(terms.names)  # every batch holds rehearsal and new samples
    assert all(value > 0 for value in terms.values("nspt"))
    for name, parameter in teacher.named_parameters():
        assert not parameter.requires_grad and parameter.grad is None
        assert torch.equal(parameter, before[name]), name
    student = dict(strategy.model.named_parameters())
    assert any(not torch.equal(student[name], before[name]) for name in before)  # the student did move
    assert coconut.teacher is not teacher  # refreshed at the end of the experience


def test_nspt_gradient_reaches_the_student_only():
    options = CoconutOptions(replay=ReplayOptions(size=12), mm={"weight": 0.0})
    strategy, slu = method_strategy(coconut_method, options)
    coconut = plugin_of(strategy, CoconutPlugin)
    strategy.train(slu.benchmark.train_stream[0], eval_streams=[])
    grads = {}

    class NSPTOnly(SupervisedPlugin):
        def before_backward(self, strategy, **kwargs):
            strategy.loss = strategy.loss * 0.0  # keep only what COCONUT adds after this plugin

        def after_backward(self, strategy, **kwargs):
            if not grads:
                grads["student"] = coconut.heads.nspt.net[0].weight.grad.abs().sum().item()
                grads["teacher"] = [p.grad for p in [*coconut.teacher.parameters(), *coconut.teacher_heads.parameters()]]

    strategy.plugins.insert(0, NSPTOnly())
    strategy.train_epochs = 1
    strategy.train(slu.benchmark.train_stream[1], eval_streams=[])
    assert grads["student"] > 0
    assert all(g is None for g in grads["teacher"])


def test_coconut_heads_belong_to_the_plugin_and_train_through_the_optimizer():
    options = CoconutOptions(replay=ReplayOptions(size=12))
    strategy, slu = method_strategy(coconut_method, options)
    coconut = plugin_of(strategy, CoconutPlugin)
    assert not any(name.startswith(("nspt", "mm_")) for name, _ in strategy.model.named_parameters())
    assert coconut.heads.nspt.net[0].in_features == strategy.model.d_model
    assert coconut.heads.mm_text.net[2].out_features == 64  # default_proj_dim(64) for the tiny preset
    before = {name: p.detach().clone() for name, p in coconut.heads.named_parameters()}
    for experience in list(slu.benchmark.train_stream)[:2]:
        strategy.train(experience, eval_streams=[])
    heads = list(coconut.heads.parameters())
    groups = [{id(p) for p in group["params"]} for group in strategy.optimizer.param_groups]
    assert len(groups) == 2 and groups[1] == {id(p) for p in heads}  # one group of their own, added once
    assert all(strategy.optimizer.state[p] for p in heads)  # Adam state kept across the experience boundary
    assert all(not torch.equal(p, before[name]) for name, p in coconut.heads.named_parameters())
    assert coconut.teacher_heads is not None and all(not p.requires_grad for p in coconut.teacher_heads.parameters())


def test_mm_text_embedding_averages_transcript_words_only():
    embedding = torch.nn.Embedding(30, 4, padding_idx=0)
    tokens = torch.tensor([[1, 5, 3, 10, 11, 2, 0]])  # [bos, intent, sep, w1, w2, eos, pad]
    expected = embedding.weight[[10, 11]].mean(0)
    assert torch.allclose(coconut_method.transcript_embedding(embedding, tokens, pad_id=0)[0], expected)
    other_intent = torch.tensor([[1, 6, 3, 10, 11, 2, 0]])
    assert torch.equal(
        coconut_method.transcript_embedding(embedding, other_intent, 0), coconut_method.transcript_embedding(embedding, tokens, 0)
    )
