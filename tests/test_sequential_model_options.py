"""MCLRec's options, both sides of each (issue 8.1): the authors' behaviour by default, the departure on request.

Built on a real RecBole dataset (the tiny synthetic one); losses are checked against a plain
Python implementation of the definitions in docs/methods.md section 2 on vectors small enough to
follow by hand.
"""

from __future__ import annotations

import math

import pytest
import torch
from recbole.data import create_dataset
from sequential_data import recbole_config, write_tiny_dataset

from models.mclrec import MCLRec

HIDDEN = 4


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory):
    """``build(**config)`` -> an MCLRec on the tiny dataset (dataset built once per module)."""
    root = tmp_path_factory.mktemp("options")
    data = write_tiny_dataset(root / "data")
    base = {"hidden_size": HIDDEN, "n_heads": 2, "inner_size": 8, "hidden_dropout_prob": 0.0, "attn_dropout_prob": 0.0}
    dataset = create_dataset(recbole_config(MCLRec, data, root, **base))

    def make(**config) -> MCLRec:
        torch.manual_seed(0)
        return MCLRec(recbole_config(MCLRec, data, root, **base, **config), dataset)

    return make


def test_defaults_are_the_authors(build) -> None:
    model = build()
    assert (model.cl1_weight, model.cl2_weight) == (0.0, 0.01)
    assert (model.regularizer_weight, model.augmenter_regularizer_weight) == (0.1, 0.1)
    assert model.mask_id == 0 and model.item_embedding.num_embeddings == model.n_items
    assert model.per_anchor and model.temperature == model.cl2_temperature == 1.0


# -- the mask item ------------------------------------------------------------------------


def _last_state_after_moving_masked_positions(model: MCLRec, masked: torch.Tensor, positions: list[int]) -> tuple[torch.Tensor, ...]:
    """The encoder's output before and after the position embeddings of ``positions`` are moved."""
    model.eval()
    length = torch.tensor([masked.size(1)])
    with torch.no_grad():
        before = model.forward(masked, length)
        model.position_embedding.weight[positions] += torch.tensor([3.0, -3.0, 1.0, -1.0])  # not a shift LayerNorm removes
        after = model.forward(masked, length)
    return before, after


@pytest.mark.parametrize("mask_item", ["padding", "token"])
def test_padding_mask_drops_out_of_the_attention_keys(build, mask_item: str) -> None:
    """With item 0 as the mask, a masked position is a padding key: nothing it holds reaches the output."""
    model = build(aug_mask_item=mask_item, initializer_range=0.5)  # wide weights: every path shows in the output
    masked = torch.tensor([[3, model.mask_id, model.mask_id, 7, 9]])
    attention = model.get_attention_mask(masked)[0, 0]
    before, after = _last_state_after_moving_masked_positions(model, masked, [1, 2])
    if mask_item == "padding":
        assert model.mask_id == 0 and (attention[4, 1:3] == -10000.0).all()
        assert torch.allclose(before, after, atol=1e-6)
    else:
        assert model.mask_id == model.n_items and (attention[4, 1:3] == 0.0).all()
        assert not torch.allclose(before, after, atol=1e-3)


@pytest.mark.parametrize("mask_item", ["padding", "token"])
def test_only_the_token_mask_learns_an_embedding(build, mask_item: str) -> None:
    model = build(aug_mask_item=mask_item, initializer_range=0.5)
    masked = torch.tensor([[3, model.mask_id, 5, model.mask_id, 9]])
    (model.forward(masked, torch.tensor([5])) * torch.tensor([1.0, -2.0, 0.5, 3.0])).sum().backward()  # LayerNorm'd: not a plain sum
    gradient = model.item_embedding.weight.grad[model.mask_id]
    assert (gradient.abs().sum() > 0) == (mask_item == "token")


# -- the augmenter step's loss ------------------------------------------------------------

H1 = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
H2 = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 2.0, 0.0, 0.0]])
Z1 = [1.0, 0.0, 0.0, 0.0]  # augmenter 1 sends every input here (its last bias, all weights zero)
Z2 = [0.0, 0.6, 0.8, 0.0]


def _scores(x: list[list[float]], y: list[list[float]]) -> tuple[list[float], list[list[float]]]:
    """Per anchor of the 2B stacked views: the positive score and the 2(B-1) negative scores (dot, tau 1)."""
    views, batch = x + y, len(x)
    dot = [[sum(a * b for a, b in zip(u, v)) for v in views] for u in views]
    partner = [i + batch if i < batch else i - batch for i in range(2 * batch)]
    positives = [dot[i][partner[i]] for i in range(2 * batch)]
    negatives = [[dot[i][j] for j in range(2 * batch) if j not in (i, partner[i])] for i in range(2 * batch)]
    return positives, negatives


def _hand_info_nce(x, y) -> float:
    positives, negatives = _scores(x, y)
    return sum(-p + math.log(math.exp(p) + sum(math.exp(n) for n in ns)) for p, ns in zip(positives, negatives)) / len(positives)


def _hand_regularizer(x, y) -> float:
    positives, negatives = _scores(x, y)
    lows = [min(p, max(ns)) for p, ns in zip(positives, negatives)]
    highs = [max(p, max(ns)) for p, ns in zip(positives, negatives)]
    positive_term = sum(max(p - low, 0.0) for p, low in zip(positives, lows)) / len(positives)
    pairs = [max(high - n, 0.0) for high, ns in zip(highs, negatives) for n in ns]
    return positive_term + sum(pairs) / len(pairs)


def _fix_augmenters(model: MCLRec) -> None:
    for augmenter, target in zip(model.augmenters, (Z1, Z2)):
        with torch.no_grad():
            for layer in augmenter.net:
                if isinstance(layer, torch.nn.Linear):
                    layer.weight.zero_()
                    layer.bias.zero_()
            augmenter.net[-1].bias.copy_(torch.tensor(target))


def _hand_terms() -> tuple[float, float]:
    h1, h2, z1, z2 = H1.tolist(), H2.tolist(), [Z1, Z1], [Z2, Z2]
    cl2 = _hand_info_nce(z1, z2) + _hand_info_nce(h1, z2) + _hand_info_nce(h2, z1)
    regularizer = _hand_regularizer(z1, z2) + _hand_regularizer(h1, z2) + _hand_regularizer(h2, z1)
    return cl2, regularizer


@pytest.mark.parametrize("cl2_weight", [0.01, 0.5])
def test_augmenter_step_loss_is_cl2_plus_a_tenth_of_r_whatever_beta(build, cl2_weight: float, monkeypatch: pytest.MonkeyPatch) -> None:
    model = build(cl2_weight=cl2_weight)
    _fix_augmenters(model)
    monkeypatch.setattr(model, "encode_views", lambda views: (H1, H2))
    cl2, regularizer = _hand_terms()
    assert regularizer > 0  # the case exercises R
    terms = model.augmenter_loss_terms(views=None)
    assert terms["cl2"].item() == pytest.approx(cl2, rel=1e-6)
    assert terms["reg"].item() == pytest.approx(0.1 * regularizer, rel=1e-6)
    assert sum(terms.values()).item() == pytest.approx(cl2 + 0.1 * regularizer, rel=1e-6)


def test_encoder_step_scales_cl2_and_r_by_beta(build) -> None:
    model = build(cl2_weight=0.5, regularizer_weight=0.2)
    _fix_augmenters(model)
    cl2, regularizer = _hand_terms()
    terms = model._meta_terms(H1, H2, model.cl2_weight, model.cl2_weight * model.regularizer_weight)
    assert terms["cl2"].item() == pytest.approx(0.5 * cl2, rel=1e-6)
    assert terms["reg"].item() == pytest.approx(0.5 * 0.2 * regularizer, rel=1e-6)


def test_the_augmenter_regularizer_weight_is_its_own_option(build, monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite's earlier rule (R scaled by 0.1 beta in the augmenter step too) stays reachable."""
    model = build(cl2_weight=0.1, augmenter_regularizer_weight=0.01)
    _fix_augmenters(model)
    monkeypatch.setattr(model, "encode_views", lambda views: (H1, H2))
    _, regularizer = _hand_terms()
    assert model.augmenter_loss_terms(views=None)["reg"].item() == pytest.approx(0.01 * regularizer, rel=1e-6)


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_cl2_temperature_scales_cl2_and_r_not_cl1(build, temperature: float, monkeypatch: pytest.MonkeyPatch) -> None:
    model = build(cl2_temperature=temperature, cl_temperature=1.0)
    _fix_augmenters(model)
    monkeypatch.setattr(model, "encode_views", lambda views: (H1, H2))
    scale = lambda rows: [[value / temperature**0.5 for value in row] for row in rows]  # noqa: E731 - dot/tau
    h1, h2, z1, z2 = scale(H1.tolist()), scale(H2.tolist()), scale([Z1, Z1]), scale([Z2, Z2])
    expected = _hand_info_nce(z1, z2) + _hand_info_nce(h1, z2) + _hand_info_nce(h2, z1)
    assert model.augmenter_loss_terms(views=None)["cl2"].item() == pytest.approx(expected, rel=1e-6)
    assert model.temperature == 1.0


# -- the augmenters' initialization -------------------------------------------------------


def test_augmenters_keep_pytorchs_init_unless_asked_for_sasrecs(build) -> None:
    authors, sasrec = build(augmenter_init="pytorch"), build(augmenter_init="sasrec")
    first = lambda model: model.augmenters[0].net[0]  # noqa: E731
    bound = 1 / math.sqrt(HIDDEN)  # nn.Linear's default: uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the bias
    assert first(authors).bias.abs().max() > 0 and first(authors).bias.abs().max() <= bound
    assert (first(sasrec).bias == 0).all() and first(sasrec).weight.std() < 0.05
    assert first(authors).weight.abs().max() > 0.1  # kaiming-uniform, far wider than normal(0, 0.02)
    # the encoder's init is SASRec's either way, and draws the same numbers
    assert torch.equal(authors.item_embedding.weight, sasrec.item_embedding.weight)
    assert torch.equal(authors.trm_encoder.layer[1].feed_forward.dense_2.weight, sasrec.trm_encoder.layer[1].feed_forward.dense_2.weight)


def test_bad_choices_name_the_key(build) -> None:
    with pytest.raises(ValueError, match="aug_mask_item"):
        build(aug_mask_item="zero")
    with pytest.raises(ValueError, match="augmenter_init"):
        build(augmenter_init="xavier")


# -- the contrastive loss: InfoNCE (the paper's) or DCL -----------------------------------


def _hand_dcl(x, y) -> float:
    positives, negatives = _scores(x, y)
    return sum(-p + math.log(sum(math.exp(n) for n in ns)) for p, ns in zip(positives, negatives)) / len(positives)


def test_cl_loss_dcl_swaps_l_con_in_cl1_and_cl2_and_nothing_else(build, monkeypatch: pytest.MonkeyPatch) -> None:
    model = build(cl_loss="dcl", cl1_weight=0.5)
    _fix_augmenters(model)
    monkeypatch.setattr(model, "encode_views", lambda views: (H1, H2))
    monkeypatch.setattr(model, "encode_batch", lambda interaction, views: (None, H1, H2))
    monkeypatch.setattr(model, "rec_loss", lambda h, items: torch.tensor(0.0))
    h1, h2, z1, z2 = H1.tolist(), H2.tolist(), [Z1, Z1], [Z2, Z2]
    _, regularizer = _hand_terms()
    augmenter = model.augmenter_loss_terms(views=None)
    assert augmenter["cl2"].item() == pytest.approx(_hand_dcl(z1, z2) + _hand_dcl(h1, z2) + _hand_dcl(h2, z1), rel=1e-6)
    assert augmenter["reg"].item() == pytest.approx(0.1 * regularizer, rel=1e-6)  # R does not depend on the loss choice
    encoder = model.encoder_loss_terms({model.POS_ITEM_ID: None}, views=None)
    assert encoder["cl1"].item() == pytest.approx(0.5 * _hand_dcl(h1, h2), rel=1e-6)
    assert _hand_dcl(h1, h2) < _hand_info_nce(h1, h2)
    with pytest.raises(ValueError, match="cl_loss"):
        build(cl_loss="ntxent")
