"""Options of the SLU scenarios (spec section ``scenario``): pydantic models, cheap to import.

Kept apart from the code that builds the benchmarks so that ``suite list`` and spec
validation do not import torch or Avalanche. The protocol options every speech scenario shares
(experiences, class order, features) are the public ``suite.api.SpeechScenarioOptions``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from scenarios.slu.grammar import GRAMMAR, MAX_SPEAKERS
from suite.api import SpeechScenarioOptions

SLUOptions = SpeechScenarioOptions
"""Options common to every SLU scenario (spec section ``scenario``): the public protocol options."""


class SpokenCommandsOptions(SLUOptions):
    """The embedded corpus. The defaults make the quick demo corpus (12 speakers, 2,304 utterances);
    the size knobs scale it down for tests and up for studies (40 speakers, 8 in test: 1,536 test utterances)."""

    corpus_seed: int = 0
    speakers: int = Field(12, ge=3, le=MAX_SPEAKERS, description="synthetic speakers, in pairs sharing an eSpeak variant")
    valid_speakers: int = Field(2, ge=1)
    test_speakers: int = Field(2, ge=1)
    phrasings_per_intent: int = Field(6, ge=1, le=8, description="phrasings said by every speaker for every intent")
    intents: int | None = Field(None, ge=2, le=len(GRAMMAR))
    synth_workers: int = Field(2, ge=1, le=16)

    @model_validator(mode="after")
    def _speakers_fit(self) -> SpokenCommandsOptions:
        if self.speakers - self.valid_speakers - self.test_speakers < 1:
            raise ValueError(
                f"speakers={self.speakers} leaves no training speaker after valid_speakers={self.valid_speakers} "
                f"and test_speakers={self.test_speakers}"
            )
        return self


class FSCOptions(SLUOptions):
    root: str


class SLURPOptions(SLUOptions):
    root: str
    num_experiences: int = Field(3, ge=1)
    label: Literal["scenario", "intent"] = "scenario"
    use_synthetic: bool = False
    audio_dir: str | None = None
