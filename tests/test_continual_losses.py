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


def _dcl_by_hand(anchors, positives_of, negatives_of, tau):
    """DCL's SupCon form with Python loops: each positive's logit against a denominator of negatives only.

    ``positives_of[i]``/``negatives_of[i]``: the vectors anchor i is pulled to / pushed from; anchors
    without a negative are left out of the mean.
    """
    dot = lambda a, b: sum(x * y for x, y in zip(a, b))  # noqa: E731
    losses = []
    for i, anchor in enumerate(anchors):
        if not negatives_of[i]:
            continue
        log_denominator = math.log(sum(math.exp(dot(anchor, n) / tau) for n in negatives_of[i]))
        losses.append(-sum(dot(anchor, p) / tau - log_denominator for p in positives_of[i]) / len(positives_of[i]))
    return sum(losses) / len(losses) if losses else 0.0


def test_nspt_dcl_matches_a_loop_and_lies_below_infonce():
    torch.manual_seed(2)
    student = torch.nn.functional.normalize(torch.randn(7, 4), dim=1)
    labels = torch.tensor([0, 1, 0, 1, 2, 3, 3])
    rehearsal = torch.tensor([True, True, True, True, False, False, False])
    teacher = torch.nn.functional.normalize(torch.randn(4, 4), dim=1)
    s, t, y, r = student.tolist(), teacher.tolist(), labels.tolist(), [0, 1, 2, 3]
    positives_of = [[t[k] for k, p in enumerate(r) if y[p] == y[i]] for i in r]
    negatives_of = [[s[n] for n in range(len(y)) if y[n] != y[i]] for i in r]
    expected = _dcl_by_hand([s[i] for i in r], positives_of, negatives_of, 0.3)
    dcl = nspt_loss(student, teacher, labels, rehearsal, temperature=0.3, variant="dcl")
    assert dcl.item() == pytest.approx(expected, rel=1e-5)
    # the positives leave the denominator: every anchor's term, and so the mean, drops below InfoNCE's
    assert dcl.item() < nspt_loss(student, teacher, labels, rehearsal, temperature=0.3).item()


def test_mm_dcl_matches_a_loop_in_both_directions():
    torch.manual_seed(3)
    audio, text = torch.randn(5, 3), torch.randn(5, 3)
    labels = torch.tensor([0, 0, 1, 2, 2])
    norm = lambda m: torch.nn.functional.normalize(m, dim=1).tolist()  # noqa: E731
    u, v, y = norm(audio), norm(text), labels.tolist()

    def by_hand(anchors, candidates):
        positives_of = [[candidates[j] for j in range(5) if y[j] == y[i]] for i in range(5)]
        negatives_of = [[candidates[j] for j in range(5) if y[j] != y[i]] for i in range(5)]
        return _dcl_by_hand(anchors, positives_of, negatives_of, 0.5)

    u_to_v, v_to_u = by_hand(u, v), by_hand(v, u)
    assert supcon_cross_loss(audio, text, labels, 0.5, variant="dcl").item() == pytest.approx(u_to_v, rel=1e-5)
    assert mm_loss(audio, text, labels, 0.5, variant="dcl").item() == pytest.approx(0.5 * (u_to_v + v_to_u), rel=1e-5)
    assert mm_loss(audio, text, labels, 0.5, variant="dcl").item() < mm_loss(audio, text, labels, 0.5).item()


def test_dcl_anchors_without_negatives_are_left_out_and_gradients_stay_finite():
    # NSPT: one rehearsal class only, and no new sample: no anchor has a negative
    student = torch.randn(3, 4, requires_grad=True)
    teacher = torch.randn(3, 4, requires_grad=True)
    same_class = torch.tensor([0, 0, 0])
    loss = nspt_loss(student, teacher, same_class, torch.ones(3, dtype=torch.bool), variant="dcl")
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(student.grad).all() and torch.isfinite(teacher.grad).all()
    # MM: new samples of a single class have no negative either
    audio = torch.randn(4, 3, requires_grad=True)
    loss = mm_loss(audio, torch.randn(4, 3), torch.tensor([1, 1, 1, 1]), variant="dcl")
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(audio.grad).all()
    # a mixed NSPT batch: the anchor of class 0 has a negative (the new sample), its mean is the one term
    student = torch.nn.functional.normalize(torch.randn(3, 4), dim=1).requires_grad_(True)
    labels = torch.tensor([0, 0, 1])
    rehearsal = torch.tensor([True, True, False])
    loss = nspt_loss(student, student.detach()[:2], labels, rehearsal, temperature=1.0, variant="dcl")
    loss.backward()
    s = student.detach().tolist()
    expected = _dcl_by_hand(s[:2], [s[:2], s[:2]], [[s[2]], [s[2]]], 1.0)
    assert loss.item() == pytest.approx(expected, rel=1e-5) and torch.isfinite(student.grad).all()


def test_an_unknown_contrastive_variant_is_refused():
    with pytest.raises(ValueError, match="infonce, dcl"):
        nspt_loss(torch.randn(2, 3), torch.randn(1, 3), torch.tensor([0, 1]), torch.tensor([True, False]), variant="dcw")
    with pytest.raises(ValueError, match="got 'nce'"):
        mm_loss(torch.randn(2, 3), torch.randn(2, 3), torch.tensor([0, 1]), variant="nce")
