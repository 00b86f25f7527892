"""The target tokenizer: <bos> <intent> <sep> words <eos>, built from training transcripts."""

from __future__ import annotations

from pathlib import Path

import pytest

from scenarios.slu.tokenizer import SPECIALS, Tokenizer, normalize
from suite.errors import DataError


@pytest.fixture
def tokenizer() -> Tokenizer:
    return Tokenizer.build(["activate_lights_kitchen", "bring_socks_none"], ["Turn on the kitchen lights.", "Bring me my socks!"])


def test_specials_come_first_with_pad_zero(tokenizer: Tokenizer) -> None:
    assert tokenizer.vocab[: len(SPECIALS)] == list(SPECIALS)
    assert (tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id, tokenizer.sep_id, tokenizer.unk_id) == (0, 1, 2, 3, 4)
    assert tokenizer.labels == ["activate_lights_kitchen", "bring_socks_none"]
    assert "<intent:activate_lights_kitchen>" in tokenizer.vocab


def test_encode_decode_round_trip(tokenizer: Tokenizer) -> None:
    ids = tokenizer.encode("activate_lights_kitchen", "Turn on the kitchen lights.")
    assert ids[0] == tokenizer.bos_id and ids[2] == tokenizer.sep_id and ids[-1] == tokenizer.eos_id
    assert tokenizer.label_of(ids[1]) == "activate_lights_kitchen"
    assert tokenizer.decode(ids) == ("activate_lights_kitchen", "turn on the kitchen lights")
    assert tokenizer.decode(ids + [0, 0]) == tokenizer.decode(ids)  # padding after eos is ignored


def test_unknown_words_and_labels(tokenizer: Tokenizer) -> None:
    ids = tokenizer.encode("bring_socks_none", "bring me my shoes")
    assert ids[-2] == tokenizer.unk_id
    with pytest.raises(DataError, match="no token for class 'fly_away_none'"):
        tokenizer.encode("fly_away_none", "fly")


def test_decode_without_an_intent_token(tokenizer: Tokenizer) -> None:
    words = tokenizer.encode("bring_socks_none", "bring me my socks")[3:]
    assert tokenizer.decode([tokenizer.bos_id, *words]) == (None, "bring me my socks")
    assert tokenizer.decode([]) == (None, "")


def test_save_and_load(tokenizer: Tokenizer, tmp_path: Path) -> None:
    path = tokenizer.save(tmp_path / "sub" / "tokenizer.json")
    assert Tokenizer.load(path) == tokenizer
    assert Tokenizer.load(path).encode("bring_socks_none", "my socks") == tokenizer.encode("bring_socks_none", "my socks")


def test_normalize_keeps_apostrophes() -> None:
    assert normalize("Don't turn OFF the lights, please!") == ["don't", "turn", "off", "the", "lights", "please"]
