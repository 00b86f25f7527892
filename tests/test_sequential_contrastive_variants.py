"""The InfoNCE family as a choice (InfoNCE, DCL), DuoRec's same-target negatives and its positive sampler."""

from __future__ import annotations

import math

import pytest
import torch

from models.duorec import SameTargetSampler
from models.losses import contrastive_loss, dcl, info_nce, pair_similarity, same_group_negatives

# Hand case, 1-d views: x = [1, 2, 0], y = [1, 0, 1], targets [7, 7, 9], tau = 1. Stacked v = [x1, x2, x3, y1, y2, y3].
# Samples 1 and 2 share target 7, so x2, y2 are no negatives of x1, y1 and the other way round.
X = torch.tensor([[1.0], [2.0], [0.0]])
Y = torch.tensor([[1.0], [0.0], [1.0]])
TARGETS = torch.tensor([7, 7, 9])
# anchor: positive (partner), negatives (the others, same-target samples left out)
# x1=1: y1 -> 1; x3 0, y3 1 | x2=2: y2 -> 0; x3 0, y3 2 | x3=0: y3 -> 0; x1 x2 y1 y2 -> 0 0 0 0
# y1=1: x1 -> 1; x3 0, y3 1 | y2=0: x2 -> 0; x3 0, y3 0 | y3=1: x3 -> 0; x1 x2 y1 y2 -> 1 2 1 0
HAND_POSITIVES = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]
HAND_NEGATIVES = [[0.0, 1.0], [0.0, 2.0], [0.0, 0.0, 0.0, 0.0], [0.0, 1.0], [0.0, 0.0], [1.0, 2.0, 1.0, 0.0]]


def _info_nce(positives: list[float], negatives: list[list[float]], tau: float = 1.0) -> float:
    rows = [-p / tau + math.log(math.exp(p / tau) + sum(math.exp(n / tau) for n in ns)) for p, ns in zip(positives, negatives)]
    return sum(rows) / len(rows)


def _dcl(positives: list[float], negatives: list[list[float]], tau: float = 1.0) -> float:
    rows = [-p / tau + math.log(sum(math.exp(n / tau) for n in ns)) if ns else 0.0 for p, ns in zip(positives, negatives)]
    return sum(rows) / len(rows)


def test_same_target_negatives_by_hand() -> None:
    negatives = same_group_negatives(TARGETS)
    assert info_nce(X, Y, 1.0, negatives).item() == pytest.approx(_info_nce(HAND_POSITIVES, HAND_NEGATIVES), rel=1e-6)
    assert dcl(X, Y, 1.0, negatives).item() == pytest.approx(_dcl(HAND_POSITIVES, HAND_NEGATIVES), rel=1e-6)
    assert negatives.sum(dim=1).tolist() == [len(ns) for ns in HAND_NEGATIVES]


def test_distinct_targets_mask_nothing_beyond_the_pair() -> None:
    generator = torch.Generator().manual_seed(1)
    x, y = torch.randn(4, 3, generator=generator), torch.randn(4, 3, generator=generator)
    distinct = same_group_negatives(torch.arange(4))
    assert info_nce(x, y, 0.7, distinct).item() == pytest.approx(info_nce(x, y, 0.7).item(), rel=1e-6)
    assert dcl(x, y, 0.7, distinct).item() == pytest.approx(dcl(x, y, 0.7).item(), rel=1e-6)


def _loop(x: torch.Tensor, y: torch.Tensor, tau: float) -> tuple[list[float], list[list[float]]]:
    views = torch.cat([x, y]).tolist()
    size = len(views)
    dot = [[sum(a * b for a, b in zip(u, v)) / tau for v in views] for u in views]
    partner = [(i + size // 2) % size for i in range(size)]
    negatives = [[dot[i][j] for j in range(size) if j not in (i, partner[i])] for i in range(size)]
    return [dot[i][partner[i]] for i in range(size)], negatives


@pytest.mark.parametrize("tau", [1.0, 0.2])
def test_dcl_equals_a_loop_over_anchors(tau: float) -> None:
    generator = torch.Generator().manual_seed(4)
    x, y = torch.randn(6, 5, generator=generator), torch.randn(6, 5, generator=generator)
    positives, negatives = _loop(x, y, tau)
    expected = sum(-p + math.log(sum(math.exp(n) for n in ns)) for p, ns in zip(positives, negatives)) / len(positives)
    assert dcl(x, y, tau).item() == pytest.approx(expected, rel=1e-5)
    assert contrastive_loss("dcl")(*pair_similarity(x, y, tau)).item() == pytest.approx(expected, rel=1e-5)
    # DCL drops exp(s+) from InfoNCE's denominator: InfoNCE is always the larger
    assert contrastive_loss("infonce")(*pair_similarity(x, y, tau)).item() > expected


def test_dcl_of_one_pair_costs_nothing_and_unknown_names_are_refused() -> None:
    assert dcl(torch.tensor([[1.0, 2.0]]), torch.tensor([[0.5, 0.1]])).item() == 0.0
    with pytest.raises(ValueError, match="infonce, dcl"):
        contrastive_loss("ntxent")


def _sampler() -> tuple[SameTargetSampler, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Six training samples (sequence row r holds r + 1): targets 3, 3, 3, 5, 5, 8."""
    targets = torch.tensor([3, 5, 3, 8, 3, 5])
    users = torch.tensor([0, 0, 1, 1, 2, 2])
    lengths = torch.tensor([1, 2, 1, 2, 3, 1])
    sequences = (torch.arange(6) + 1).unsqueeze(1).repeat(1, 4)
    return SameTargetSampler(targets, users, sequences, lengths, n_users=3), targets, users, sequences, lengths


def test_sampler_draws_another_sample_with_the_same_target_uniformly() -> None:
    sampler, targets, users, sequences, lengths = _sampler()
    torch.manual_seed(0)
    counts = torch.zeros(6, 6)
    for _ in range(300):
        picked, picked_len = sampler(targets, users, sequences, lengths)
        rows = picked[:, 0] - 1  # which training sample each row got
        assert torch.equal(targets[rows], targets)  # always the same target
        assert torch.equal(picked_len, lengths[rows])
        counts[torch.arange(6), rows] += 1
    # a sample with other same-target samples never gets itself; its target's only sample (row 3, target 8) does
    assert counts.diagonal().tolist() == [0, 0, 0, 300, 0, 0]
    # row 0 (target 3) draws rows 2 and 4 about equally often
    assert counts[0, 2] + counts[0, 4] == 300 and 100 < counts[0, 2] < 200


def test_sampler_is_seeded_by_the_global_generator_and_pickles_without_data() -> None:
    import pickle

    sampler, targets, users, sequences, lengths = _sampler()
    draws = []
    for _ in range(2):
        torch.manual_seed(5)
        draws.append(sampler(targets, users, sequences, lengths)[0])
    assert torch.equal(draws[0], draws[1])
    restored = pickle.loads(pickle.dumps(sampler))
    assert restored.sequences.numel() == 0
    with pytest.raises(RuntimeError, match="predicts only"):
        restored(targets, users, sequences, lengths)
