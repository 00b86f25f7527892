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


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU: checks that a meta-training step never waits for the host")
def test_a_meta_training_step_does_not_sync_the_gpu(tiny) -> None:
    """Issue 9.5: losses stay on the device, no .item() per term per batch, no bucketing sizes read back."""
    from recbole.data.interaction import Interaction

    from suite.sequential.meta_trainer import MetaTrainer

    data, root, dataset = tiny
    config = recbole_config(MCLRec, data, root, use_gpu=True, gpu_id="0", meta_optimization="three-step", learning_rate=0.001)
    model = MCLRec(config, dataset).to(config["device"])
    trainer = MetaTrainer(config, model)
    generator = torch.Generator().manual_seed(0)
    batch = Interaction(
        {
            model.ITEM_SEQ: torch.randint(1, model.n_items, (32, 10), generator=generator),
            model.ITEM_SEQ_LEN: torch.randint(1, 11, (32,), generator=generator),
            model.POS_ITEM_ID: torch.randint(1, model.n_items, (32,), generator=generator),
        }
    ).to(config["device"])
    model.train()
    trainer.train_batch(batch)  # warm-up: lazy CUDA initialization may sync
    torch.cuda.set_sync_debug_mode("error")
    try:
        losses = trainer.train_batch(batch)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert losses and all(value.device.type == "cuda" for value in losses.values())


def _draws(module: torch.nn.Module, *inputs: torch.Tensor, count: int = 400) -> torch.Tensor:
    module.train()
    with torch.no_grad():
        return torch.stack([module(*inputs) for _ in range(count)])


@pytest.mark.parametrize(("attn_dropout", "hidden_dropout"), [(0.5, 0.0), (0.0, 0.5), (0.2, 0.2)])
def test_training_mode_draws_the_same_output_distribution_as_recboles_layers(attn_dropout: float, hidden_dropout: float) -> None:
    """Dropout in the same places with the same rates: over many draws each layer of both stacks
    (same weights, same input) gives outputs with the same mean and spread."""
    torch.manual_seed(0)
    reference = TransformerEncoder(1, 4, HIDDEN, 64, hidden_dropout, attn_dropout, "gelu", 1e-12).layer[0]
    for parameter in reference.parameters():
        torch.nn.init.normal_(parameter, std=0.3)
    fused = FusedTransformerEncoder(1, 4, HIDDEN, 64, hidden_dropout, attn_dropout, "gelu", 1e-12).layer[0]
    fused.load_state_dict(reference.state_dict())
    items, _, hidden = _batch()
    mask = causal_padding_mask(items)
    valid = (items != 0).unsqueeze(-1).expand(-1, -1, HIDDEN)  # outputs that reach a recommendation
    torch.manual_seed(5)
    for expected, got in (
        (_draws(reference.multi_head_attention, hidden, mask), _draws(fused.multi_head_attention, hidden, mask)),
        (_draws(reference.feed_forward, hidden), _draws(fused.feed_forward, hidden)),
    ):
        spread = expected.std(dim=0)[valid]
        if spread.max() == 0:  # no dropout in this sublayer: both deterministic and equal
            assert got.std(dim=0)[valid].max() == 0 and torch.allclose(got[0], expected[0], atol=1e-5)
            continue
        assert abs(got.std(dim=0)[valid].mean() / spread.mean() - 1) < 0.03
        standard_error = spread * (2 / len(expected)) ** 0.5 + 1e-6
        assert ((got.mean(dim=0)[valid] - expected.mean(dim=0)[valid]).abs() / standard_error).mean() < 1.2  # ~0.8 when equal
