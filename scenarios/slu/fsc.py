"""Fluent Speech Commands loader, for the corpus's documented on-disk layout.

The class of an utterance is its intent ``action_object_location`` (FSC writes ``none`` for
an empty field; the label keeps it), which gives 31 classes on the real corpus. The
embedded spoken-commands corpus is written in this same layout and read by this loader.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from scenarios.slu.corpus import SPLITS, Corpus, Utterance, read_text
from suite.errors import DataError
from suite.paths import resolved

COLUMNS = ("path", "speakerId", "transcription", "action", "object", "location")
LAYOUT = (
    "expected <root>/data/{train,valid,test}_data.csv (header ',path,speakerId,transcription,action,object,location') "
    "and audio at <root>/wavs/speakers/<speakerId>/<id>.wav (16 kHz mono)"
)
WHERE = (
    "Fluent Speech Commands is free for academic research from Fluent.ai "
    "(https://fluent.ai/fluent-speech-commands-a-dataset-for-spoken-language-understanding-research/); "
    "scenario 'spoken-commands' needs no download"
)


def _layout_error(root: Path, problem: str) -> DataError:
    return DataError(f"FSC root {root}: {problem}; {LAYOUT}. {WHERE}")


def csv_path(root: Path, split: str) -> Path:
    return root / "data" / f"{split}_data.csv"


def load_fsc(root: str | Path, checksum: str | None = None, name: str = "fsc") -> Corpus:
    """Read the three split CSVs; the layout is checked before any audio is touched.

    ``checksum`` replaces the stat-based fingerprint (the spoken-commands corpus passes its
    manifest's content checksum, which survives a byte-identical rebuild).
    """
    root = resolved(root)
    check_layout(root)
    splits = {split: _read_split(root, csv_path(root, split)) for split in SPLITS}
    return Corpus(name=name, root=root, splits=splits, metadata_files=[csv_path(root, s) for s in SPLITS], checksum=checksum)


def check_layout(root: str | Path) -> None:
    """Raise a DataError naming the first missing piece of the FSC layout (no audio read)."""
    root = resolved(root)
    if not root.exists():
        raise _layout_error(root, "directory does not exist")
    if not root.is_dir():
        raise _layout_error(root, "is not a directory")
    if not (root / "data").is_dir():
        raise _layout_error(root, "missing folder data/")
    missing = [f"data/{split}_data.csv" for split in SPLITS if not csv_path(root, split).is_file()]
    if missing:
        raise _layout_error(root, f"missing {', '.join(missing)}")
    if not (root / "wavs" / "speakers").is_dir():
        raise _layout_error(root, "missing folder wavs/speakers/")


def _read_split(root: Path, path: Path) -> list[Utterance]:
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    try:
        header = reader.fieldnames or []
        absent = [column for column in COLUMNS if column not in header]
        if absent:
            raise _layout_error(root, f"{path} lacks column(s) {', '.join(absent)} (found {','.join(header) or 'no header'})")
        rows = [_utterance(root, path, reader.line_num, row) for row in reader]
    except csv.Error as error:
        raise DataError(f"{path}:{reader.line_num}: malformed CSV ({error})") from None
    if not rows:
        raise DataError(f"{path}: no utterances")
    return rows


def _utterance(root: Path, path: Path, line: int, row: dict) -> Utterance:
    values = {column: (row.get(column) or "").strip() for column in COLUMNS}
    empty = [column for column in ("path", "speakerId", "action") if not values[column]]
    if empty:
        raise DataError(f"{path}:{line}: empty {', '.join(empty)}")
    label = "_".join(values[c] or "none" for c in ("action", "object", "location"))
    return Utterance(root / values["path"], values["speakerId"], values["transcription"], label, source=f"{path}:{line}")
