"""NSPT, MM and the distillation losses against small cases computed by hand."""

import math

import pytest
import torch

from suite.continual.losses import (
    feature_distillation_loss,
    mm_loss,
    nspt_loss,
    sequence_distillation_loss,
    supcon_cross_loss,
    token_distillation_loss,
)

torch.set_num_threads(1)


def _nspt_by_hand(student, teacher_of, labels, rehearsal, tau):
    """The NSPT formula of docs/methods.md 1.4 written out with Python loops."""
    losses = []
    for i in rehearsal:
        positives = [p for p in rehearsal if labels[p] == labels[i]]
        negatives = [n for n in range(len(labels)) if labels[n] != labels[i]]
        dot = lambda a, b: sum(x * y for x, y in zip(a, b))  # noqa: E731
        denominator = sum(math.exp(dot(student[i], teacher_of[p]) / tau) for p in positives)
        denominator += sum(math.exp(dot(student[i], student[n]) / tau) for n in negatives)
        losses.append(-sum(dot(student[i], teacher_of[p]) / tau - math.log(denominator) for p in positives) / len(positives))
    return sum(losses) / len(losses)


def test_nspt_closed_form_case():
    # two rehearsal samples of class 0, one new sample of class 1, tau = 1
    student = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    teacher = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1])
    rehearsal = torch.tensor([True, True, False])
    d0 = math.e + 1 + math.exp(-1)  # anchor 0: positives e^1, e^0; negative s0.s2 = -1
    d1 = 2 + math.e  # anchor 1: positives e^0, e^1; negative s1.s2 = 0
    expected = 0.5 * ((math.log(d0) - 0.5) + (math.log(d1) - 0.5))
    assert nspt_loss(student, teacher, labels, rehearsal, temperature=1.0).item() == pytest.approx(expected, rel=1e-6)


def test_nspt_matches_formula_on_random_case():
    torch.manual_seed(0)
    student = torch.nn.functional.normalize(torch.randn(6, 4), dim=1)
    labels = torch.tensor([0, 1, 0, 2, 3, 3])
    rehearsal = torch.tensor([True, True, True, False, False, False])
    teacher = torch.nn.functional.normalize(torch.randn(3, 4), dim=1)
    teacher_of = {index: teacher[k].tolist() for k, index in enumerate([0, 1, 2])}
    expected = _nspt_by_hand(student.tolist(), teacher_of, labels.tolist(), [0, 1, 2], 0.5)
    assert nspt_loss(student, teacher, labels, rehearsal, temperature=0.5).item() == pytest.approx(expected, rel=1e-5)


def test_nspt_positives_from_teacher_negatives_from_student():
    torch.manual_seed(1)
    labels = torch.tensor([0, 0, 1, 1])
    rehearsal = torch.tensor([True, True, False, False])
    student = torch.nn.functional.normalize(torch.randn(4, 3), dim=1).requires_grad_(True)
    teacher = torch.nn.functional.normalize(torch.randn(2, 3), dim=1).requires_grad_(True)
    loss = nspt_loss(student, teacher, labels, rehearsal, temperature=0.2)
    loss.backward()
    # the new samples enter only as student negatives: they get gradient through the student
    assert student.grad[2:].abs().sum() > 0
    # the positives are the teacher's views: moving them changes the loss ...
    assert teacher.grad.abs().sum() > 0
    # ... and using the student's own views as positives gives another value
    same_views = nspt_loss(student.detach(), student.detach()[:2], labels, rehearsal, temperature=0.2)
    assert not torch.isclose(loss.detach(), same_views)


def test_nspt_without_rehearsal_is_zero_and_differentiable():
    student = torch.randn(3, 4, requires_grad=True)
    loss = nspt_loss(student, torch.zeros(0, 4), torch.tensor([0, 1, 2]), torch.zeros(3, dtype=torch.bool))
    assert loss.item() == 0.0
    loss.backward()


def test_mm_closed_form_case():
    # two new samples of different classes, audio and text perfectly aligned, tau = 1
    audio = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    text = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    expected = math.log(1 + math.exp(-1))
    assert mm_loss(audio, text, torch.tensor([0, 1]), temperature=1.0).item() == pytest.approx(expected, rel=1e-6)


def _supcon_by_hand(anchors, candidates, labels, tau):
    """SupCon(anchors -> candidates) with Python loops: positives = same label, denominator = all."""
    norm = lambda v: [x / math.sqrt(sum(y * y for y in v)) for x in v]  # noqa: E731
    anchors, candidates = [norm(a) for a in anchors], [norm(c) for c in candidates]
    total = 0.0
    for i, a in enumerate(anchors):
        logits = [sum(x * y for x, y in zip(a, c)) / tau for c in candidates]
        log_denominator = math.log(sum(math.exp(v) for v in logits))
        positives = [j for j in range(len(candidates)) if labels[j] == labels[i]]
        total += -sum(logits[j] - log_denominator for j in positives) / len(positives)
    return total / len(anchors)


def test_mm_same_class_texts_are_all_positives_and_loss_is_symmetric():
    audio = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    text = torch.tensor([[0.8, 0.6], [1.0, 0.0], [-1.0, 0.0]])
    labels = torch.tensor([0, 0, 1])
    tau = 0.5
    u_to_v = _supcon_by_hand(audio.tolist(), text.tolist(), labels.tolist(), tau)
    v_to_u = _supcon_by_hand(text.tolist(), audio.tolist(), labels.tolist(), tau)
    assert supcon_cross_loss(audio, text, labels, tau).item() == pytest.approx(u_to_v, rel=1e-6)
    assert mm_loss(audio, text, labels, tau).item() == pytest.approx(0.5 * (u_to_v + v_to_u), rel=1e-6)
    assert u_to_v != pytest.approx(v_to_u)  # the two directions differ; MM averages them
    assert mm_loss(text, audio, labels, tau).item() == pytest.approx(mm_loss(audio, text, labels, tau).item())


def test_mm_empty_is_zero():
    assert mm_loss(torch.zeros(0, 4), torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)).item() == 0.0


def test_distillation_losses_by_hand():
    student = torch.tensor([[1.0, 2.0]], requires_grad=True)
    teacher = torch.tensor([[0.0, 0.0]], requires_grad=True)
    loss = feature_distillation_loss(student, teacher)
    assert loss.item() == pytest.approx((1 + 4) / 2)
    loss.backward()
    assert teacher.grad is None  # the teacher's features are detached
    logits = torch.log(torch.tensor([[[0.25, 0.75], [0.5, 0.5]]]))
    assert sequence_distillation_loss(logits, torch.tensor([[1, 0]]), pad_id=0).item() == pytest.approx(-math.log(0.75))
    same = torch.randn(2, 3, 5)
    valid = torch.tensor([[True, True, False], [True, False, False]])
    assert token_distillation_loss(same, same, valid).item() == pytest.approx(0.0, abs=1e-6)
    assert token_distillation_loss(same, torch.randn(2, 3, 5), valid).item() > 0


def test_token_mean_ignores_pad_and_weights_the_intent():
    from suite.continual.strategy import weighted_token_mean

    per_token = torch.tensor([[2.0, 1.0, 1.0, 0.0], [4.0, 1.0, 0.0, 0.0]])
    targets = torch.tensor([[7, 11, 2, 0], [8, 2, 0, 0]])  # [intent, words..., eos, pad]
    assert weighted_token_mean(per_token, targets, pad_id=0).item() == pytest.approx((2 + 1 + 1 + 4 + 1) / 5)
    assert weighted_token_mean(per_token, targets, pad_id=0, intent_weight=3.0).item() == pytest.approx((6 + 1 + 1 + 12 + 1) / 9)
