"""Word-level tokenizer for the seq2seq targets ``<bos> <intent:...> <sep> words... <eos>``.

Built from the training transcripts only (a word seen only in valid/test maps to ``<unk>``,
as it would for a deployed model), with one token per class so the intent is the first
decoded token. Saved as JSON next to each run, so a checkpoint can always be decoded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from suite.errors import DataError

PAD, BOS, EOS, SEP, UNK = "<pad>", "<bos>", "<eos>", "<sep>", "<unk>"
SPECIALS = (PAD, BOS, EOS, SEP, UNK)
_INTENT_PREFIX = "<intent:"
_WORD = re.compile(r"[a-z0-9']+")


def normalize(text: str) -> list[str]:
    """Lower-case words; punctuation dropped, apostrophes kept ("don't")."""
    return _WORD.findall(text.lower())


def intent_token(label: str) -> str:
    return f"{_INTENT_PREFIX}{label}>"


class Tokenizer:
    """Maps (class label, transcript) to token ids and back; ``<pad>`` is always id 0."""

    def __init__(self, vocab: Sequence[str]) -> None:
        if tuple(vocab[: len(SPECIALS)]) != SPECIALS:
            raise DataError(f"tokenizer vocabulary must start with {list(SPECIALS)}, got {list(vocab[:5])}")
        if len(set(vocab)) != len(vocab):
            raise DataError("tokenizer vocabulary has duplicate tokens")
        self.vocab: list[str] = list(vocab)
        self._ids = {token: index for index, token in enumerate(self.vocab)}
        self._labels = {
            index: token[len(_INTENT_PREFIX) : -1] for index, token in enumerate(self.vocab) if token.startswith(_INTENT_PREFIX)
        }
        self.pad_id, self.bos_id, self.eos_id, self.sep_id, self.unk_id = (self._ids[t] for t in SPECIALS)

    @classmethod
    def build(cls, labels: Iterable[str], transcripts: Iterable[str]) -> Tokenizer:
        """Specials, then one token per class (sorted), then training words (sorted)."""
        words = sorted({word for text in transcripts for word in normalize(text)})
        return cls([*SPECIALS, *(intent_token(label) for label in sorted(set(labels))), *words])

    def __len__(self) -> int:
        return len(self.vocab)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def labels(self) -> list[str]:
        """Class labels that have a token, in vocabulary order."""
        return list(self._labels.values())

    def intent_id(self, label: str) -> int:
        """Token id of a class label; DataError for an unknown label."""
        try:
            return self._ids[intent_token(label)]
        except KeyError:
            raise DataError(f"tokenizer has no token for class '{label}'") from None

    def label_of(self, token_id: int) -> str | None:
        """The class label of an intent token id, None for any other id."""
        return self._labels.get(int(token_id))

    def encode(self, label: str, transcript: str) -> list[int]:
        """``[bos, intent, sep, words..., eos]``; unknown words become ``<unk>``."""
        words = [self._ids.get(word, self.unk_id) for word in normalize(transcript)]
        return [self.bos_id, self.intent_id(label), self.sep_id, *words, self.eos_id]

    def decode(self, ids: Iterable[int]) -> tuple[str | None, str]:
        """(class label or None, transcript) from ids: stops at ``<eos>``, skips pad/bos/sep."""
        ids = [int(i) for i in ids]
        if ids and ids[0] == self.bos_id:
            ids = ids[1:]
        label = self.label_of(ids[0]) if ids else None
        if label is not None:
            ids = ids[1:]
        words = []
        for token_id in ids:
            if token_id == self.eos_id:
                break
            if token_id in (self.pad_id, self.bos_id, self.sep_id) or token_id in self._labels:
                continue
            words.append(self.vocab[token_id] if 0 <= token_id < len(self.vocab) else UNK)
        return label, " ".join(words)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"format": "suite-slu-tokenizer/1", "vocab": self.vocab}, indent=0))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
            vocab = data["vocab"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise DataError(f"{path}: not a tokenizer file ({type(error).__name__}: {error})") from None
        return cls(vocab)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tokenizer) and self.vocab == other.vocab
