"""SLURP loader: jsonl annotations plus FLAC recordings; the class is the scenario (or the intent).

Two layouts load. The repository as distributed: a clone of
https://github.com/pswietojanski/slurp keeps the annotations in ``dataset/slurp/`` and its
``scripts/download_audio.sh`` saves ``audio/slurp_real.tar.gz`` and ``audio/slurp_synth.tar.gz``,
which extract to ``audio/slurp_real/`` and ``audio/slurp_synth/``. A flat folder: the jsonl
files beside ``slurp_real/`` (and ``slurp_synth/``). ``scenario.audio_dir`` points at the
folder holding ``slurp_real/`` when the audio lives elsewhere.

Every entry of a sentence's ``recordings`` list is one utterance with the sentence as its
transcript. ``devel.jsonl`` is the validation split. The synthetic training recordings
(``train_synthetic.jsonl`` with audio in ``slurp_synth/``) are added only when asked for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from scenarios.slu.corpus import Corpus, Utterance, read_text
from suite.errors import DataError
from suite.paths import resolved

FILES = {"train": "train.jsonl", "valid": "devel.jsonl", "test": "test.jsonl"}
SYNTH_FILE = "train_synthetic.jsonl"
REAL_AUDIO, SYNTH_AUDIO = "slurp_real", "slurp_synth"
REPO_ANNOTATIONS = Path("dataset") / "slurp"
REPO_AUDIO = Path("audio")
LAYOUTS = (
    "expected <root>/dataset/slurp/{train,devel,test}.jsonl with the audio in <root>/audio/slurp_real/*.flac "
    "(a clone of https://github.com/pswietojanski/slurp: its scripts/download_audio.sh saves audio/slurp_real.tar.gz and "
    "audio/slurp_synth.tar.gz, extract them in place with 'tar -xzf audio/slurp_real.tar.gz -C audio') "
    "or <root>/{train,devel,test}.jsonl with <root>/slurp_real/*.flac (flat layout); "
    "synthetic recordings (use_synthetic: true) add train_synthetic.jsonl and slurp_synth/; "
    "scenario.audio_dir names the folder holding slurp_real/ if it is elsewhere"
)
LABELS = ("scenario", "intent")


@dataclass(frozen=True)
class Layout:
    """Where a SLURP copy keeps its annotations and the folder that holds ``slurp_real/``."""

    kind: str  # "repository" or "flat"
    annotations: Path
    audio: Path


def _layout_error(root: Path, problem: str) -> DataError:
    return DataError(f"SLURP root {root}: {problem}; {LAYOUTS}")


def load_slurp(root: str | Path, label: str = "scenario", use_synthetic: bool = False, audio_dir: str | Path | None = None) -> Corpus:
    """Read train/devel/test jsonl from either layout; no audio is read (see ``find_layout``)."""
    if label not in LABELS:
        raise DataError(f"SLURP label must be one of {', '.join(LABELS)}, got '{label}'")
    layout = find_layout(root, audio_dir, use_synthetic)
    splits = {split: _read_jsonl(layout.annotations / name, layout.audio / REAL_AUDIO, label) for split, name in FILES.items()}
    metadata = [layout.annotations / name for name in FILES.values()]
    if use_synthetic:
        splits["train"] = splits["train"] + _read_jsonl(layout.annotations / SYNTH_FILE, layout.audio / SYNTH_AUDIO, label)
        metadata.append(layout.annotations / SYNTH_FILE)
    name = f"slurp-{label}" + ("-synth" if use_synthetic else "")
    return Corpus(name=name, root=Path(root).expanduser().resolve(), splits=splits, metadata_files=metadata)


def find_layout(root: str | Path, audio_dir: str | Path | None = None, use_synthetic: bool = False) -> Layout:
    """The layout of ``root``, checked down to the audio folders; a DataError names the first missing piece."""
    root = resolved(root)
    if not root.exists():
        raise _layout_error(root, "directory does not exist")
    if not root.is_dir():
        raise _layout_error(root, "is not a directory")
    if (root / REPO_ANNOTATIONS).is_dir():
        layout = Layout("repository", root / REPO_ANNOTATIONS, root / REPO_AUDIO)
    elif any((root / name).is_file() for name in FILES.values()):
        layout = Layout("flat", root, root)
    else:
        raise _layout_error(root, "missing train.jsonl, devel.jsonl, test.jsonl (flat layout) and dataset/slurp/ (repository layout)")
    if audio_dir:
        layout = Layout(layout.kind, layout.annotations, resolved(audio_dir))
    _check_files(root, layout, use_synthetic)
    return layout


def _check_files(root: Path, layout: Layout, use_synthetic: bool) -> None:
    needed = list(FILES.values()) + ([SYNTH_FILE] if use_synthetic else [])
    missing = [_shown(root, layout.annotations / name) for name in needed if not (layout.annotations / name).is_file()]
    if missing:
        raise _layout_error(root, f"missing {', '.join(missing)}")
    for folder in [REAL_AUDIO] + ([SYNTH_AUDIO] if use_synthetic else []):
        if not (layout.audio / folder).is_dir():
            raise _layout_error(root, _missing_audio(root, layout.audio, folder))


def _missing_audio(root: Path, audio: Path, folder: str) -> str:
    tarball = audio / f"{folder}.tar.gz"
    if tarball.is_file():
        return f"{_shown(root, tarball)} is not extracted (run 'tar -xzf {tarball} -C {audio}')"
    return f"missing audio folder {audio / folder}/"


def _shown(root: Path, path: Path) -> str:
    """A path relative to the root when it is inside it (shorter messages)."""
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def _read_jsonl(path: Path, audio: Path, label: str) -> list[Utterance]:
    utterances: list[Utterance] = []
    for line_no, line in enumerate(read_text(path).splitlines(), start=1):
        if line.strip():
            utterances.extend(_entry(path, line_no, line, audio, label))
    if not utterances:
        raise DataError(f"{path}: no recordings")
    return utterances


def _entry(path: Path, line_no: int, line: str, audio: Path, label: str) -> list[Utterance]:
    try:
        entry = json.loads(line)
    except ValueError as error:
        raise DataError(f"{path}:{line_no}: not valid JSON ({error})") from None
    if not isinstance(entry, dict):
        raise DataError(f"{path}:{line_no}: expected a JSON object")
    absent = [key for key in ("sentence", label, "recordings") if key not in entry]
    if absent:
        raise DataError(f"{path}:{line_no}: missing field(s) {', '.join(absent)}")
    recordings = entry["recordings"]
    if not isinstance(recordings, list) or not all(isinstance(r, dict) and _plain_name(r.get("file")) for r in recordings):
        raise DataError(f"{path}:{line_no}: 'recordings' must be a list of objects whose 'file' is a file name (audio-<timestamp>.flac)")
    speaker = str(entry.get("user_id", entry.get("slurp_id", "unknown")))
    source = f"{path}:{line_no}"
    return [
        Utterance(audio / r["file"], str(r.get("speaker", speaker)), str(entry["sentence"]), str(entry[label]), source=source)
        for r in recordings
    ]


def _plain_name(name: object) -> bool:
    """A bare file name: recordings live directly in slurp_real/, so no folder part and no '..'."""
    return isinstance(name, str) and bool(name) and "/" not in name and "\\" not in name and name not in (".", "..")
