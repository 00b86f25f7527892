"""Where the transcript sits in an SLU target sequence: ``[bos, intent, sep, words..., eos, pad...]``.

The SLU tokenizer (``scenarios.slu.tokenizer.Tokenizer.encode``) writes targets in this layout;
WER (``metrics.py``) and COCONUT's text embedding (``coconut.py``) both read the words from it,
through the two functions here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

TRANSCRIPT_OFFSET = 3
"""Index of the first transcript word: after ``bos``, the intent token and ``sep``."""


def transcript_ids(tokens: Sequence[int], pad_id: int, eos_id: int) -> list[int]:
    """The transcript words of one sequence: from the offset up to eos or pad."""
    words = []
    for token in list(tokens)[TRANSCRIPT_OFFSET:]:
        if token in (eos_id, pad_id):
            break
        words.append(int(token))
    return words


def transcript_mask(tokens: Tensor, pad_id: int) -> Tensor:
    """[B, L] True on the transcript words of teacher-forcing targets (eos and padding excluded)."""
    positions = torch.arange(tokens.size(1), device=tokens.device)[None, :]
    lengths = (tokens != pad_id).sum(1, keepdim=True)
    return (positions >= TRANSCRIPT_OFFSET) & (positions < lengths - 1)
