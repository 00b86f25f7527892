"""A continual scenario from a Speech Commands style folder, written from ``suite.api`` alone.

Audio lives at ``ROOT/<label>/<speaker>_<n>.wav``; the label is the class and, with
underscores read as spaces, the transcript. Speakers are split by name: the last
``test_speakers`` (sorted) are the test split, the ``valid_speakers`` before them the
validation split. The scenario returns a ``SpeechCorpus``: the suite computes the features,
the tokenizer and the class-incremental streams from the protocol options it inherits
(``num_experiences``, ``class_order``, ``features``).

Register it in the package's metadata::

    [options.entry_points]
    suite.scenarios =
        speech-folder = speech_folder:SPEECH_FOLDER
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from suite.api import BuildContext, DataError, ScenarioEntry, SpeechCorpus, SpeechScenarioOptions, SpeechUtterance


class SpeechFolderOptions(SpeechScenarioOptions):
    root: str = Field(description="folder holding one sub-folder of <speaker>_<n>.wav files per label")
    valid_speakers: int = Field(1, ge=1)
    test_speakers: int = Field(1, ge=1)


def check(options: SpeechFolderOptions) -> None:
    """Pre-flight: the folder exists and holds labelled recordings of enough speakers."""
    speakers = {speaker for _, speaker, _ in _recordings(Path(options.root))}
    needed = options.valid_speakers + options.test_speakers + 1
    if len(speakers) < needed:
        raise DataError(f"{options.root}: {len(speakers)} speaker(s), expected at least {needed} (train, valid and test)")


def build(options: SpeechFolderOptions, context: BuildContext) -> SpeechCorpus:
    recordings = _recordings(Path(options.root))
    speakers = sorted({speaker for _, speaker, _ in recordings})
    test = set(speakers[len(speakers) - options.test_speakers :])
    valid = set(speakers[len(speakers) - options.test_speakers - options.valid_speakers : len(speakers) - options.test_speakers])
    utterances = [
        SpeechUtterance(
            audio=path,
            speaker=speaker,
            transcript=label.replace("_", " "),
            label=label,
            split="test" if speaker in test else "valid" if speaker in valid else "train",
        )
        for label, speaker, path in recordings
    ]
    return SpeechCorpus(name=Path(options.root).name, utterances=utterances)


def _recordings(root: Path) -> list[tuple[str, str, Path]]:
    """(label, speaker, path) of every ``<label>/<speaker>_<n>.wav``, sorted."""
    if not root.is_dir():
        raise DataError(f"{root}: folder not found (expected {root}/<label>/<speaker>_<n>.wav)")
    found = []
    for path in sorted(root.glob("*/*.wav")):
        speaker, sep, _ = path.stem.rpartition("_")
        if not sep:
            raise DataError(f"{path}: expected a file name <speaker>_<n>.wav")
        found.append((path.parent.name, speaker, path))
    return found


SPEECH_FOLDER = ScenarioEntry(
    name="speech-folder",
    family="continual",
    options=SpeechFolderOptions,
    build=build,
    check=check,
    description="Speech Commands style folders (ROOT/<label>/<speaker>_<n>.wav), class-incremental by label",
)
