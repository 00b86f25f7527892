"""What decides the bytes of a spoken-commands corpus: the synthesis recipe and its checks.

Kept apart from the synthesizer (no torch, no audio libraries) so that the scenario's
pre-flight check can validate a recipe while the launch is planned.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from scenarios.slu import grammar
from suite.errors import DataError

FORMAT = "suite-spoken-commands/1"


@dataclass(frozen=True)
class CorpusSpec:
    """Everything that decides the corpus's bytes."""

    seed: int = 0
    speakers: int = 12
    valid_speakers: int = 2
    test_speakers: int = 2
    phrasings_per_intent: int = 6
    intents: int | None = None  # keep the grammar's first N intents (tiny test corpora)

    def check(self) -> None:
        n_intents = len(grammar.intents(self.intents))
        if n_intents < 2:
            raise DataError(f"spoken-commands: intents={self.intents} leaves {n_intents} intent(s); need at least 2")
        if self.speakers > grammar.MAX_SPEAKERS:
            raise DataError(f"spoken-commands: speakers={self.speakers}, at most {grammar.MAX_SPEAKERS} synthetic speakers exist")
        if self.speakers - self.valid_speakers - self.test_speakers < 1 or min(self.valid_speakers, self.test_speakers) < 1:
            raise DataError(
                f"spoken-commands: speakers={self.speakers} cannot hold valid_speakers={self.valid_speakers}, "
                f"test_speakers={self.test_speakers} and at least one training speaker"
            )
        shortest = min(len(grammar.GRAMMAR[i]) for i in grammar.intents(self.intents))
        if not 1 <= self.phrasings_per_intent <= shortest:
            raise DataError(f"spoken-commands: phrasings_per_intent={self.phrasings_per_intent}, must be between 1 and {shortest}")

    def key(self) -> str:
        payload = json.dumps({"spec": asdict(self), "grammar": grammar.GRAMMAR_VERSION, "format": FORMAT}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]
