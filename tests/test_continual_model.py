"""The seq2seq SLU model: shapes, masks, padding invariance, text embedding, decoding."""

import pytest
import torch

from models.slu_seq2seq import PRESETS, build_slu_seq2seq, subsampled_lengths

torch.set_num_threads(1)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return build_slu_seq2seq(vocab_size=30, n_mels=16, pad_id=0, preset="tiny").eval()


def test_forward_shapes_and_subsampling(model):
    x = torch.randn(3, 50, 16)
    lens = torch.tensor([50, 37, 9])
    tokens = torch.randint(1, 30, (3, 7))
    assert model(x, lens, tokens).shape == (3, 7, 30)
    memory, mask = model.encode(x, lens)
    assert memory.shape == (3, 13, 64)
    assert mask.sum(1).tolist() == subsampled_lengths(lens).tolist() == [13, 10, 3]


def test_padding_does_not_change_the_pooled_embedding(model):
    x = torch.randn(1, 40, 16)
    padded = torch.cat([x, torch.zeros(1, 24, 16)], dim=1)
    lens = torch.tensor([40])
    a = model.pooled(*model.encode(x, lens))
    b = model.pooled(*model.encode(padded, lens))
    assert torch.allclose(a, b, atol=1e-5)


def test_the_model_holds_the_seq2seq_network_only(model):
    # COCONUT's projection heads belong to its plugin (suite/continual/coconut.py)
    assert {name.split(".")[0] for name, _ in model.named_children()} == {
        "subsample",
        "position",
        "dropout",
        "encoder",
        "embedding",
        "decoder",
        "output",
        "global_proj",
    }


def test_decoder_is_causal(model):
    x, lens = torch.randn(1, 30, 16), torch.tensor([30])
    a = model(x, lens, torch.tensor([[1, 5, 3, 10]]))
    b = model(x, lens, torch.tensor([[1, 5, 3, 20]]))
    assert torch.allclose(a[:, :3], b[:, :3], atol=1e-5)
    assert not torch.allclose(a[:, 3], b[:, 3])


def test_greedy_decode_starts_with_bos_and_pads_after_eos(model):
    out = model.greedy_decode(torch.randn(4, 30, 16), torch.tensor([30, 25, 20, 10]), max_len=6, bos_id=1, eos_id=2)
    assert out.shape[0] == 4 and out.shape[1] <= 7
    assert (out[:, 0] == 1).all()
    for row in out.tolist():
        if 2 in row:
            assert all(token == 0 for token in row[row.index(2) + 1 :])


def test_greedy_decode_matches_teacher_forced_argmax(model):
    x, lens = torch.randn(2, 30, 16), torch.tensor([30, 22])
    out = model.greedy_decode(x, lens, max_len=4, bos_id=1, eos_id=29)
    logits = model(x, lens, out[:, :-1])
    assert torch.equal(logits.argmax(-1)[:, 0], out[:, 1])


def test_presets_and_conformer_build():
    assert set(PRESETS) >= {"tiny", "small", "base"}
    conformer = build_slu_seq2seq(30, 16, preset="tiny", encoder="conformer")
    assert conformer(torch.randn(2, 40, 16), torch.tensor([40, 30]), torch.randint(1, 30, (2, 5))).shape == (2, 5, 30)
    with pytest.raises(ValueError):
        build_slu_seq2seq(30, 16, encoder="lstm")


def test_global_conditioning_can_be_switched_off():
    plain = build_slu_seq2seq(30, 16, preset="tiny", global_conditioning=False)
    assert plain.global_proj is None
    assert plain(torch.randn(2, 40, 16), torch.tensor([40, 30]), torch.randint(1, 30, (2, 5))).shape == (2, 5, 30)
