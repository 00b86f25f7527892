"""Crop, mask and reorder on the padded batch (tensor operations) against the per-sequence definitions.

The reference below is the list implementation the suite used before (one Python loop per
sequence, numpy's generator); the batched module must draw from the same distributions:
operator pairs, crop spans and starts, masked positions, reordered spans.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from models.sequence_augmentation import SequenceAugmentation, restore_generator

CROP, MASK, REORDER = 0.5, 0.5, 0.8
LENGTHS = [1, 2, 3, 5, 8, 13, 20]
WIDTH = 20
DRAWS = 3000


def reference_views(items: list[int], rng: np.random.Generator, mask_id: int) -> tuple[list[int], list[int]]:
    """The per-sequence definitions (docs/methods.md 2.2), one sequence at a time."""
    if len(items) <= 1:
        return list(items), list(items)

    def crop() -> list[int]:
        span = max(1, int(np.floor(CROP * len(items))))
        start = int(rng.integers(0, len(items) - span + 1))
        return items[start : start + span]

    def mask() -> list[int]:
        masked = list(items)
        for position in rng.choice(len(items), size=int(np.floor(MASK * len(items))), replace=False):
            masked[int(position)] = mask_id
        return masked

    def reorder() -> list[int]:
        span = int(np.floor(REORDER * len(items)))
        if span < 2:
            return list(items)
        start = int(rng.integers(0, len(items) - span + 1))
        shuffled = list(items[start : start + span])
        rng.shuffle(shuffled)
        return items[:start] + shuffled + items[start + span :]

    operators = (crop, mask, reorder)
    first, second = rng.choice(3, size=2, replace=False)
    return operators[first](), operators[second]()


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    seq = torch.zeros(len(LENGTHS), WIDTH, dtype=torch.long)
    for row, length in enumerate(LENGTHS):
        seq[row, :length] = torch.arange(1, length + 1) + 100 * row
    return seq, torch.tensor(LENGTHS)


def classify(original: list[int], view: list[int]) -> str:
    """Which operator made ``view`` (a reorder that kept the order counts as a reorder)."""
    if len(view) != len(original):
        return "crop"
    return "mask" if 0 in view else "reorder"


def statistics(views: list[tuple[list[int], list[int]]], original: list[int]) -> dict[str, Counter]:
    """Frequencies over draws: operator pairs, crop starts, masked positions, moved positions."""
    counts: dict[str, Counter] = {"pair": Counter(), "crop_start": Counter(), "masked": Counter(), "moved": Counter(), "length": Counter()}
    for pair in views:
        kinds = tuple(classify(original, view) for view in pair)
        counts["pair"][kinds] += 1
        for kind, view in zip(kinds, pair):
            counts["length"][len(view)] += 1
            if kind == "crop":
                counts["crop_start"][original.index(view[0])] += 1
            elif kind == "mask":
                counts["masked"].update(position for position, item in enumerate(view) if item == 0)
            else:
                counts["moved"].update(position for position, (a, b) in enumerate(zip(original, view)) if a != b)
    return counts


@pytest.fixture(scope="module")
def both_draws() -> dict[int, tuple[list, list]]:
    """For each length: (batched module's views, reference views), DRAWS of each."""
    seq, lengths = batch()
    module = SequenceAugmentation(CROP, MASK, REORDER, mask_id=0, seed=5)
    rng = np.random.default_rng(5)
    drawn: dict[int, tuple[list, list]] = {length: ([], []) for length in LENGTHS}
    for _ in range(DRAWS):
        views = module(seq, lengths)
        for row, length in enumerate(LENGTHS):
            first = views.seq1[row, : views.len1[row]].tolist()
            second = views.seq2[row, : views.len2[row]].tolist()
            drawn[length][0].append((first, second))
            drawn[length][1].append(reference_views(seq[row, :length].tolist(), rng, 0))
    return drawn


@pytest.mark.parametrize("length", LENGTHS)
def test_batched_views_have_the_reference_distribution(both_draws, length: int) -> None:
    original = list(range(1, length + 1))
    original = [item + 100 * LENGTHS.index(length) for item in original]
    batched, reference = (statistics(views, original) for views in both_draws[length])
    for name in batched:
        keys = set(batched[name]) | set(reference[name])
        for key in keys:  # frequency per draw; 5 standard errors of a difference of two proportions at p = 0.5
            gap = abs(batched[name][key] - reference[name][key]) / DRAWS
            assert gap < 5 * (0.5 / DRAWS**0.5) * 2**0.5, (length, name, key, batched[name][key], reference[name][key])
    if length > 1:
        assert set(batched["pair"]) == {(a, b) for a in ("crop", "mask", "reorder") for b in ("crop", "mask", "reorder") if a != b}
    else:
        assert batched["pair"] == Counter({("reorder", "reorder"): DRAWS})  # left alone


def test_views_keep_the_width_and_padding() -> None:
    seq, lengths = batch()
    views = SequenceAugmentation(CROP, MASK, REORDER, mask_id=999, seed=1)(seq, lengths)
    for view, view_lengths in ((views.seq1, views.len1), (views.seq2, views.len2)):
        assert view.shape == seq.shape and view.dtype == seq.dtype
        positions = torch.arange(WIDTH)
        assert (view[positions >= view_lengths.unsqueeze(1)] == 0).all()
        assert ((view != 0) | (positions >= view_lengths.unsqueeze(1))).all()  # no padding inside a view


def test_same_seed_same_views_and_the_state_travels_in_the_state_dict() -> None:
    seq, lengths = batch()
    first, second = SequenceAugmentation(CROP, MASK, REORDER, 0, seed=7), SequenceAugmentation(CROP, MASK, REORDER, 0, seed=7)
    assert torch.equal(first(seq, lengths).seq1, second(seq, lengths).seq1)
    saved = first.state_dict()
    expected = first(seq, lengths)
    resumed = SequenceAugmentation(CROP, MASK, REORDER, 0, seed=7)
    resumed.load_state_dict(saved)  # before its first draw: the state waits for the generator
    again = resumed(seq, lengths)
    assert torch.equal(again.seq1, expected.seq1) and torch.equal(again.seq2, expected.seq2)
    assert not torch.equal(SequenceAugmentation(CROP, MASK, REORDER, 0, seed=7)(seq, lengths).seq1, expected.seq1)
    state = torch.load(_saved(saved), weights_only=True)  # a weights-only checkpoint holds it
    assert torch.equal(state["_extra_state"]["generator"], saved["_extra_state"]["generator"])


def test_a_pickled_module_continues_the_same_stream():
    """mlflow.pytorch.save_model pickles the whole model: the live generator travels as its state."""
    import copy
    import pickle

    seq, lengths = torch.arange(1, 41).reshape(2, 20), torch.tensor([20, 9])
    module = SequenceAugmentation(CROP, MASK, REORDER, 0, seed=3)
    module(seq, lengths)  # the generator is live now
    restored, copied = pickle.loads(pickle.dumps(module)), copy.deepcopy(module)
    expected = module(seq, lengths)
    for other in (restored, copied):
        views = other(seq, lengths)
        assert torch.equal(views.seq1, expected.seq1) and torch.equal(views.seq2, expected.seq2)


def test_a_generator_state_saved_on_another_device_seeds_the_generator_instead() -> None:
    """A GPU run resumed on a CPU: the CUDA generator's state (16 bytes: seed, offset) cannot drive a CPU generator.

    The module is then seeded from that state (fixed by the checkpoint, different for another
    state); a state of the same kind is still replayed exactly. The state also arrives on the
    device the checkpoint was loaded onto (here the CPU; ``.cpu()`` makes a CUDA copy work).
    """
    seq, lengths = batch()
    cuda_state = torch.tensor([7, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0, 0, 0, 0, 0, 0], dtype=torch.uint8)
    other_cuda_state = cuda_state.clone()
    other_cuda_state[8] = 128  # the same seed, a later offset

    def resumed_from(state: torch.Tensor) -> torch.Tensor:
        module = SequenceAugmentation(CROP, MASK, REORDER, 0, seed=7)
        module.set_extra_state({"generator": state})
        return module(seq, lengths).seq1

    assert torch.equal(resumed_from(cuda_state), resumed_from(cuda_state))
    assert not torch.equal(resumed_from(cuda_state), resumed_from(other_cuda_state))
    live = SequenceAugmentation(CROP, MASK, REORDER, 0, seed=7)
    live(seq, lengths)
    live.set_extra_state({"generator": cuda_state})  # a live generator takes it the same way
    assert torch.equal(live(seq, lengths).seq1, resumed_from(cuda_state))
    own = torch.Generator().manual_seed(11)
    replayed = torch.Generator()
    restore_generator(replayed, own.get_state())
    assert torch.equal(torch.rand(5, generator=replayed), torch.rand(5, generator=own))


def _saved(state: dict) -> object:
    import io

    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return buffer
