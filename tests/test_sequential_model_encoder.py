"""The fused encoder is RecBole's encoder: same parameters, same function (issue 9.1).

One state dict loads into both stacks; in eval mode every position's output agrees within
1e-5, and so do the last-position states the recommenders read. FusedSASRec and RecBole's
own SASRec start from the same weights for a seed. Dropout keeps each element with
probability 1 - p.
"""

from __future__ import annotations

import pytest
import torch
from recbole.data import create_dataset
from recbole.model.layers import TransformerEncoder
from recbole.model.sequential_recommender import SASRec
from sequential_data import recbole_config, write_tiny_dataset

import models.transformer as transformer
from models.mclrec import MCLRec
from models.sasrec import FusedSASRec
from models.transformer import FusedTransformerEncoder, causal_padding_mask, fast_dropout, keep_mask

HIDDEN, LENGTH = 32, 12


def _pair(hidden_act: str = "gelu", n_layers: int = 2) -> tuple[TransformerEncoder, FusedTransformerEncoder]:
    torch.manual_seed(0)
    reference = TransformerEncoder(n_layers, 4, HIDDEN, 64, 0.3, 0.3, hidden_act, 1e-12)
    for parameter in reference.parameters():  # far from SASRec's small init: every path matters
        torch.nn.init.normal_(parameter, std=0.3)
    fused = FusedTransformerEncoder(n_layers, 4, HIDDEN, 64, 0.3, 0.3, hidden_act, 1e-12)
    fused.load_state_dict(reference.state_dict())  # strict: the same keys and shapes
    return reference.eval(), fused.eval()


def _batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    lengths = torch.tensor([1, 2, 5, 12, 12, 7, 3, 9])
    items = torch.randint(1, 50, (len(lengths), LENGTH), generator=generator)
    items = items * (torch.arange(LENGTH) < lengths.unsqueeze(1))
    items[3, [0, 4, 5]] = 0  # masked with the padding item inside a sequence (MCLRec's mask)
    items[5, 0] = 0  # a first position with no key to attend to
    return items, lengths, torch.randn(len(lengths), LENGTH, HIDDEN, generator=generator)


@pytest.mark.parametrize("hidden_act", ["gelu", "relu", "swish", "tanh", "sigmoid"])
def test_same_weights_same_outputs_at_every_position(hidden_act: str) -> None:
    reference, fused = _pair(hidden_act)
    items, _, hidden = _batch()
    mask = causal_padding_mask(items)
    with torch.no_grad():
        expected, got = reference(hidden, mask), fused(hidden, mask)
    assert len(expected) == len(got) == 2
    for layer_expected, layer_got in zip(expected, got):
        assert torch.allclose(layer_expected, layer_got, atol=1e-5, rtol=0)


@pytest.mark.parametrize("n_layers", [1, 2, 3])
def test_last_states_are_the_last_positions_of_the_full_stack(n_layers: int) -> None:
    reference, fused = _pair(n_layers=n_layers)
    items, lengths, hidden = _batch()
    with torch.no_grad():
        full = reference(hidden, causal_padding_mask(items))[-1]
        last = fused.last_states(hidden, items, lengths - 1)
    expected = full[torch.arange(len(lengths)), lengths - 1]
    assert torch.allclose(last, expected, atol=1e-5, rtol=0)


def test_the_cpu_training_path_is_sdpas_math(monkeypatch: pytest.MonkeyPatch) -> None:
    """While training on a CPU attention runs its own math (for the cheap dropout): with dropout
    switched to identity it equals SDPA's."""
    _, fused = _pair()
    items, _, hidden = _batch()
    mask = causal_padding_mask(items)
    with torch.no_grad():
        expected = fused(hidden, mask)[-1]
        monkeypatch.setattr(transformer, "fast_dropout", lambda x, p, training: x)
        fused.train()
        got = fused(hidden, mask)[-1]
    assert torch.allclose(got, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("p", [0.5, 0.2, 0.1, 0.3])
def test_dropout_keeps_one_minus_p_and_rescales(p: float) -> None:
    torch.manual_seed(3)
    keep = keep_mask(torch.Size([400, 500]), p)
    assert abs(keep.float().mean().item() - (1 - p)) < 5 * ((p * (1 - p)) / keep.numel()) ** 0.5
    assert abs(keep[0].float().mean().item() - keep[:, 0].float().mean().item()) < 0.15  # no structure by row or column
    x = torch.ones(1000, 100)
    dropped = fast_dropout(x, p, True)
    assert dropped.unique().tolist() == [0.0, pytest.approx(1 / (1 - p))]
    assert fast_dropout(x, p, False) is x


def test_dropout_is_reproducible_from_the_global_seed() -> None:
    torch.manual_seed(11)
    first = keep_mask(torch.Size([64, 64]), 0.5)
    torch.manual_seed(11)
    assert torch.equal(first, keep_mask(torch.Size([64, 64]), 0.5))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("encoder")
    data = write_tiny_dataset(root / "data")
    return data, root, create_dataset(recbole_config(FusedSASRec, data, root))


def test_fused_sasrec_starts_where_recboles_sasrec_starts_and_computes_the_same(tiny) -> None:
    data, root, dataset = tiny
    torch.manual_seed(4)
    recbole = SASRec(recbole_config(SASRec, data, root, **{"train_neg_sample_args": None}), dataset).eval()
    torch.manual_seed(4)
    fused = FusedSASRec(recbole_config(FusedSASRec, data, root), dataset).eval()
    torch.manual_seed(4)
    on_recbole_stack = FusedSASRec(recbole_config(FusedSASRec, data, root, encoder="recbole"), dataset).eval()
    state = recbole.state_dict()
    for model in (fused, on_recbole_stack):
        assert state.keys() == model.state_dict().keys()
        assert all(torch.equal(state[key], value) for key, value in model.state_dict().items())
    items, lengths, _ = _batch()
    items = items.clamp(max=dataset.item_num - 1)[:, :10]
    lengths = lengths.clamp(max=10)
    with torch.no_grad():
        expected = recbole.forward(items, lengths)
        for model in (fused, on_recbole_stack):
            assert torch.allclose(model.forward(items, lengths), expected, atol=1e-5, rtol=0)
            assert torch.allclose(model.encode_bucketed(items, lengths), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("encoder", ["fused", "recbole"])
def test_mclrec_picks_its_encoder(tiny, encoder: str) -> None:
    data, root, dataset = tiny
    model = MCLRec(recbole_config(MCLRec, data, root, encoder=encoder), dataset)
    expected = FusedTransformerEncoder if encoder == "fused" else TransformerEncoder
    assert type(model.trm_encoder) is expected
    assert "augment._extra_state" in model.state_dict()
