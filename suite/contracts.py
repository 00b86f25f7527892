"""What a scenario's ``build()`` returns, for each family, and the check the suite runs on it.

A scenario plugin picks one of two contracts per family. The simple one hands the suite plain
data and lets it do the rest, the way Avalanche's ``benchmark_from_datasets`` takes ordinary
datasets; the advanced one hands over a finished scenario object.

========== ============================================ =================================================
family     simple: return plain data                    advanced: return a finished scenario
========== ============================================ =================================================
continual  :class:`SpeechCorpus` (utterances with audio, :class:`ContinualScenario`: Avalanche streams,
           speaker, transcript, label, split); options  tokenizer, collate function, sizes
           subclass :class:`SpeechScenarioOptions`
sequential :class:`InteractionTable` (a DataFrame or an  :class:`SequentialScenario`: a RecBole config
           atomic ``.inter`` file, and its field names) fragment and a dataset description
========== ============================================ =================================================

From a :class:`SpeechCorpus` the suite computes and caches log-mel features, builds the
tokenizer (``<intent> <sep> transcript``) and the class-incremental streams, with the
experiences, class order and features of the :class:`SpeechScenarioOptions`. From an
:class:`InteractionTable` it writes a RecBole atomic dataset into its cache (keyed by
content), applies the count filters of :class:`InteractionProtocolOptions` (when the options
subclass it; else its defaults) and the leave-one-out protocol.

:func:`check_built` runs right after ``build()``: for a scenario from another distribution
the launch builds it once before any MLflow run exists, so a wrong shape is exit 2 with one
line naming what is missing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pydantic import Field, field_validator, model_validator

from suite.errors import SpecError
from suite.options import Options

FAMILIES = {
    "continual": "class-incremental spoken language understanding on Avalanche (audio in, intent and transcript out)",
    "sequential": "next-item recommendation on RecBole (interaction sequences in, ranked items out)",
}
"""The families an entry declares (``family=``): a scenario, a model and a method of one run share one."""

SPLITS = ("train", "valid", "test")


# ------------------------------------------------------------------ continual: the simple contract


@dataclass(frozen=True)
class SpeechUtterance:
    """One recording: its audio (a file soundfile reads, or a mono waveform), who spoke, what was said, its class, its split.

    ``audio`` is a path (WAV, FLAC, any rate: resampled to 16 kHz) or a 1-D float array at
    ``sample_rate``; waveforms are written once into the suite's cache, keyed by content.
    ``label`` is the class the experiences are made of (an intent); ``split`` is one of
    ``train``, ``valid``, ``test`` (keep speakers apart across splits).
    """

    audio: Path | Any
    speaker: str
    transcript: str
    label: str
    split: str
    sample_rate: int = 16_000


@dataclass(frozen=True)
class SpeechCorpus:
    """A continual scenario's simple result: its utterances, and a name for the dataset record."""

    name: str
    utterances: Sequence[SpeechUtterance]


class FeatureOptions(Options):
    """Filterbank parameters (spec keys ``scenario.features.*``)."""

    n_mels: int = Field(80, ge=8, le=256)
    win_ms: float = Field(25.0, gt=0, le=100)
    hop_ms: float = Field(10.0, gt=0, le=100)
    normalize: bool = True


class SpeechScenarioOptions(Options):
    """The class-incremental protocol of a speech scenario; a plugin returning a :class:`SpeechCorpus` subclasses it."""

    num_experiences: int = Field(6, ge=1)
    classes_per_exp: list[int] | None = None
    class_order: list[str] | None = None
    features: FeatureOptions = Field(default_factory=FeatureOptions)
    cache_dir: str | None = None
    skip_bad_audio: bool = False

    @model_validator(mode="after")
    def _experiences_agree(self) -> SpeechScenarioOptions:
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


# ------------------------------------------------------------------ continual: the advanced contract


@runtime_checkable
class Tokenizer(Protocol):
    """Token ids of ``<bos> <intent> <sep> transcript <eos>``; ``len()`` is the vocabulary size."""

    pad_id: int
    bos_id: int
    eos_id: int

    def __len__(self) -> int: ...
    def encode(self, label: str, transcript: str) -> list[int]: ...
    def decode(self, ids: Sequence[int]) -> tuple[str | None, str]: ...
    def save(self, path: str | Path) -> Path: ...


@runtime_checkable
class ContinualScenario(Protocol):
    """A finished continual scenario, for plugins that bring their own streams.

    ``benchmark`` has ``train_stream``, ``test_stream`` and ``valid_stream`` (Avalanche
    experiences, experience i of each stream holding the same classes); a sample is
    ``(features [T, n_mels], class index, token ids, task label)`` and ``collate_fn`` pads a
    list of them into ``(x, y, x_lens, tokens, t)``. ``classes_per_exp`` and ``class_order``
    describe the experiences, ``train_size`` is the number of training samples (a replay
    buffer given as a fraction is a share of it). The suite's ``SLUBenchmark`` is one.
    """

    benchmark: Any
    tokenizer: Tokenizer
    n_mels: int
    collate_fn: Callable[[Sequence[tuple]], tuple]
    classes_per_exp: Sequence[int]
    class_order: Sequence[str]
    train_size: int


# ------------------------------------------------------------------ sequential


class InteractionProtocolOptions(Options):
    """Count filters and sequence length applied to a sequential dataset before leave-one-out (RecBole's keys)."""

    user_inter_num_interval: str | None = Field(default="[3,inf)", description="users kept by interaction count, e.g. '[5,inf)'")
    item_inter_num_interval: str | None = Field(default=None, description="items kept by count; with the user interval a k-core")
    max_seq_length: int = Field(default=50, gt=0)

    @field_validator("user_inter_num_interval", "item_inter_num_interval")
    @classmethod
    def _interval(cls, value: str | None) -> str | None:
        from scenarios.recsys.grammar import interval  # RecBole eval()s these strings: only its interval syntax passes

        return None if value is None else interval(value)


@dataclass(frozen=True)
class InteractionTable:
    """A sequential scenario's simple result: interactions as a DataFrame or an atomic file, and their fields.

    Give ``frame`` (one row per interaction, columns ``user_field``, ``item_field``,
    ``time_field``; other columns are dropped) or ``inter_file`` (a RecBole atomic ``.inter``
    file with a typed header). ``name`` names the dataset (letters, digits, ``_.-``).
    """

    name: str
    frame: Any = None
    inter_file: Path | None = None
    user_field: str = "user_id"
    item_field: str = "item_id"
    time_field: str = "timestamp"


@runtime_checkable
class SequentialScenario(Protocol):
    """A finished sequential scenario: the dataset half of a RecBole config, and what the run records.

    ``config_fragment()`` returns RecBole config keys (``data_path``, ``dataset``, the field
    names, ``load_col``, filters, ``eval_args``); every string in it passes the suite's guard
    before RecBole sees it. ``dataset`` has ``label`` (a name for people), ``digest`` (of the
    file RecBole reads) and ``source`` (where it came from). The suite's ``RecBoleScenario`` is one.
    """

    dataset: Any

    def config_fragment(self) -> dict[str, Any]: ...


# ------------------------------------------------------------------ the check


def _missing_attributes(built: Any, names: Sequence[str]) -> list[str]:
    return [name for name in names if not hasattr(built, name)]


CONTINUAL_ATTRIBUTES = ("benchmark", "tokenizer", "n_mels", "collate_fn", "classes_per_exp", "class_order", "train_size")
SEQUENTIAL_ATTRIBUTES = ("config_fragment", "dataset")


def check_built(scenario: str, family: str, built: Any, options: Any) -> None:
    """SpecError naming what is missing when ``built`` fits none of the family's contracts (see the module docstring)."""
    where = f"scenario '{scenario}' build() returned {type(built).__name__}"
    if family == "continual":
        if isinstance(built, SpeechCorpus):
            _check_speech_corpus(where, built, options)
            return
        missing = _missing_attributes(built, CONTINUAL_ATTRIBUTES)  # the streams are not touched: a tuning run never reads test
        if hasattr(built, "tokenizer"):
            missing += [f"tokenizer.{name}" for name in _missing_attributes(built.tokenizer, ("pad_id", "bos_id", "eos_id"))]
        if missing:
            hint = "; an Avalanche benchmark goes in its .benchmark" if hasattr(built, "train_stream") else ""
            expected = "a suite.api.SpeechCorpus, or a suite.api.ContinualScenario"
            raise SpecError(f"{where}; expected {expected} (missing {', '.join(missing)}{hint})")
    elif family == "sequential":
        if isinstance(built, InteractionTable):
            _check_interaction_table(where, built)
            return
        missing = _missing_attributes(built, SEQUENTIAL_ATTRIBUTES)
        missing += [f"dataset.{name}" for name in _missing_attributes(getattr(built, "dataset", None), ("label", "digest", "source"))]
        if missing:
            expected = "a suite.api.InteractionTable, or a suite.api.SequentialScenario"
            raise SpecError(f"{where}; expected {expected} (missing {', '.join(missing)})")


def _check_speech_corpus(where: str, corpus: SpeechCorpus, options: Any) -> None:
    if not isinstance(options, SpeechScenarioOptions):
        needs = "the scenario's options to subclass suite.api.SpeechScenarioOptions (experiences, class order, features)"
        raise SpecError(f"{where}: a SpeechCorpus needs {needs}")
    for index, utterance in enumerate(corpus.utterances):
        if not isinstance(utterance, SpeechUtterance):
            raise SpecError(f"{where}: utterance {index} is a {type(utterance).__name__}, expected suite.api.SpeechUtterance")
        if utterance.split not in SPLITS:
            raise SpecError(f"{where}: utterance {index} has split '{utterance.split}', expected one of {', '.join(SPLITS)}")
    empty = [split for split in SPLITS if not any(u.split == split for u in corpus.utterances)]
    if empty:
        raise SpecError(f"{where}: no utterance in the {', '.join(empty)} split(s); a continual run trains, validates and tests")


def _check_interaction_table(where: str, table: InteractionTable) -> None:
    if (table.frame is None) == (table.inter_file is None):
        raise SpecError(f"{where}: an InteractionTable takes exactly one of frame (a DataFrame) and inter_file")
    if table.frame is not None:
        columns = getattr(table.frame, "columns", None)
        if columns is None:
            raise SpecError(f"{where}: InteractionTable.frame is a {type(table.frame).__name__}, expected a pandas DataFrame")
        absent = [name for name in (table.user_field, table.item_field, table.time_field) if name not in columns]
        if absent:
            shown = ", ".join(map(str, columns))
            raise SpecError(f"{where}: InteractionTable.frame has no column(s) {', '.join(absent)}; its columns: {shown}")
