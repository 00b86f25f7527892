"""Options of the SLU scenarios (spec section ``scenario``): pydantic models, cheap to import.

Kept apart from the code that builds the benchmarks so that ``suite list`` and spec
validation do not import torch or Avalanche.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from scenarios.slu.grammar import GRAMMAR, MAX_SPEAKERS
from suite.api import Options


class FeatureOptions(Options):
    """Filterbank parameters (spec keys ``scenario.features.*``)."""

    n_mels: int = Field(80, ge=8, le=256)
    win_ms: float = Field(25.0, gt=0, le=100)
    hop_ms: float = Field(10.0, gt=0, le=100)
    normalize: bool = True


class SLUOptions(Options):
    """Options common to every SLU scenario (spec section ``scenario``)."""

    num_experiences: int = Field(6, ge=1)
    classes_per_exp: list[int] | None = None
    class_order: list[str] | None = None
    features: FeatureOptions = Field(default_factory=FeatureOptions)
    cache_dir: str | None = None
    skip_bad_audio: bool = False

    @model_validator(mode="after")
    def _experiences_agree(self) -> SLUOptions:
        if self.classes_per_exp is not None:
            if "num_experiences" in self.model_fields_set and self.num_experiences != len(self.classes_per_exp):
                raise ValueError(f"num_experiences={self.num_experiences} but classes_per_exp has {len(self.classes_per_exp)} entries")
            if any(n < 1 for n in self.classes_per_exp):
                raise ValueError(f"classes_per_exp {self.classes_per_exp}: every experience needs at least one class")
        return self

    @property
    def experiences(self) -> int:
        """The number of experiences: the length of classes_per_exp when it is given."""
        return len(self.classes_per_exp) if self.classes_per_exp is not None else self.num_experiences


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
