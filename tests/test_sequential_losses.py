"""MCLRec's losses on cases small enough to compute by hand."""

from __future__ import annotations

import math

import pytest
import torch

from models.losses import cl2_loss, cl2_regularizer, contrastive_regularizer, info_nce, pair_scores

# Two pairs of 2-d views: x = [a, b], y = [c, d].
X = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
Y = torch.tensor([[1.0, 1.0], [0.0, 2.0]])
# Stacked views v = [a, b, c, d]; dot products by hand:
# a.b=0 a.c=1 a.d=0 | b.c=1 b.d=2 | c.d=2
# anchor a: positive a.c=1, negatives a.b=0, a.d=0
# anchor b: positive b.d=2, negatives b.a=0, b.c=1
# anchor c: positive c.a=1, negatives c.b=1, c.d=2
# anchor d: positive d.b=2, negatives d.a=0, d.c=2
POSITIVES = [1.0, 2.0, 1.0, 2.0]
NEGATIVES = [[0.0, 0.0], [0.0, 1.0], [1.0, 2.0], [0.0, 2.0]]


def _hand_info_nce(temperature: float) -> float:
    total = 0.0
    for positive, negatives in zip(POSITIVES, NEGATIVES):
        logits = [positive / temperature] + [n / temperature for n in negatives]
        total += -logits[0] + math.log(sum(math.exp(v) for v in logits))
    return total / 4


def test_pair_scores_are_positives_and_the_2_b_minus_1_negatives() -> None:
    positives, negatives = pair_scores(X, Y)
    assert positives.tolist() == POSITIVES
    assert sorted(map(sorted, negatives.tolist())) == sorted(map(sorted, NEGATIVES))
    assert negatives.shape == (4, 2)  # 2(|B|-1) per anchor


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_info_nce_matches_hand_computation(temperature: float) -> None:
    assert info_nce(X, Y, temperature).item() == pytest.approx(_hand_info_nce(temperature), rel=1e-6)


def test_info_nce_is_symmetric_in_its_arguments() -> None:
    assert info_nce(X, Y).item() == pytest.approx(info_nce(Y, X).item(), rel=1e-6)


def test_regularizer_per_anchor_by_hand() -> None:
    # per anchor: max negative m = [0, 1, 2, 2]; o_min = min(p, m) = [0, 1, 1, 2]; o_max = max(p, m) = [1, 2, 2, 2]
    # positive term: relu(p - o_min) = [1, 1, 0, 0] -> mean 0.5
    # negative term: relu(o_max - n) = [[1,1],[2,1],[1,0],[2,0]] -> sum 8 / 8 = 1.0
    assert contrastive_regularizer(X, Y, 1.0, per_anchor=True).item() == pytest.approx(1.5)


def test_regularizer_batch_wide_by_hand() -> None:
    # batch: min positive 1, max negative 2 -> o_min = 1, o_max = 2
    # positive term: relu(p - 1) = [0, 1, 0, 1] -> 0.5; negative term: relu(2 - n) = [[2,2],[2,1],[1,0],[2,0]] -> 10 / 8
    assert contrastive_regularizer(X, Y, 1.0, per_anchor=False).item() == pytest.approx(0.5 + 1.25)


def test_regularizer_uses_temperature_scaled_scores() -> None:
    assert contrastive_regularizer(X, Y, 0.5).item() == pytest.approx(2 * 1.5)


def test_cl2_is_the_sum_of_the_three_pairs() -> None:
    h1, h2 = X, Y
    z1, z2 = torch.tensor([[0.6, 0.8], [1.0, 0.0]]), torch.tensor([[0.0, 1.0], [0.8, 0.6]])
    expected = info_nce(z1, z2) + info_nce(h1, z2) + info_nce(h2, z1)
    assert cl2_loss(h1, h2, z1, z2).item() == pytest.approx(expected.item())
    expected_r = sum(contrastive_regularizer(a, b) for a, b in ((z1, z2), (h1, z2), (h2, z1)))
    assert cl2_regularizer(h1, h2, z1, z2).item() == pytest.approx(expected_r.item())
    # hand value of one term: L_con(h1, z2) with h1 = X, z2 = [[0,1],[.8,.6]]
    # v = [a=(1,0), b=(0,1), e=(0,1), f=(.8,.6)]; a: pos a.e=0, negs a.b=0 a.f=.8; b: pos b.f=.6, negs 0, 1;
    # e: pos e.a=0, negs e.b=1 e.f=.6; f: pos f.b=.6, negs f.a=.8 f.e=.6
    pos = [0.0, 0.6, 0.0, 0.6]
    neg = [[0.0, 0.8], [0.0, 1.0], [1.0, 0.6], [0.8, 0.6]]
    hand = sum(-p + math.log(math.exp(p) + sum(math.exp(n) for n in ns)) for p, ns in zip(pos, neg)) / 4
    assert info_nce(h1, z2).item() == pytest.approx(hand, rel=1e-6)


def test_a_batch_of_one_pair_has_no_negatives_and_costs_nothing() -> None:
    x, y = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.5, 0.1]])
    assert info_nce(x, y).item() == pytest.approx(0.0)
    assert contrastive_regularizer(x, y).item() == 0.0


def _loop_scores(x: torch.Tensor, y: torch.Tensor) -> tuple[list[float], list[list[float]]]:
    views = torch.cat([x, y]).tolist()
    batch = x.size(0)
    dot = [[sum(a * b for a, b in zip(u, v)) for v in views] for u in views]
    partner = [(i + batch) % (2 * batch) for i in range(2 * batch)]
    negatives = [[dot[i][j] for j in range(2 * batch) if j not in (i, partner[i])] for i in range(2 * batch)]
    return [dot[i][partner[i]] for i in range(2 * batch)], negatives


@pytest.mark.parametrize("per_anchor", [True, False])
def test_losses_equal_a_loop_over_anchors_on_random_views(per_anchor: bool) -> None:
    generator = torch.Generator().manual_seed(2)
    x, y = torch.randn(5, 3, generator=generator), torch.randn(5, 3, generator=generator)
    positives, negatives = _loop_scores(x, y)
    nce = sum(-p + math.log(math.exp(p) + sum(math.exp(n) for n in ns)) for p, ns in zip(positives, negatives)) / len(positives)
    assert info_nce(x, y).item() == pytest.approx(nce, rel=1e-5)
    highest = [max(ns) for ns in negatives]
    if not per_anchor:
        positives_low, highest = [min(positives)] * len(positives), [max(highest)] * len(positives)
    else:
        positives_low = positives
    o_min = [min(p, h) for p, h in zip(positives_low, highest)]
    o_max = [max(p, h) for p, h in zip(positives_low, highest)]
    positive_term = sum(max(p - low, 0.0) for p, low in zip(positives, o_min)) / len(positives)
    negative_term = sum(max(high - n, 0.0) for high, ns in zip(o_max, negatives) for n in ns) / sum(map(len, negatives))
    assert contrastive_regularizer(x, y, 1.0, per_anchor).item() == pytest.approx(positive_term + negative_term, rel=1e-5)
