"""SLURP loader: jsonl annotations plus FLAC recordings; the class is the scenario (or the intent).

Every entry of a sentence's ``recordings`` list is one utterance with the sentence as its
transcript. ``devel.jsonl`` is the validation split. The synthetic training recordings
(``train_synthetic.jsonl`` with audio in ``slurp_synth/``) are added only when asked for.
"""

from __future__ import annotations

import json
from pathlib import Path

from scenarios.slu.corpus import Corpus, Utterance, file_fingerprint
from suite.errors import DataError

FILES = {"train": "train.jsonl", "valid": "devel.jsonl", "test": "test.jsonl"}
SYNTH_FILE = "train_synthetic.jsonl"
LAYOUT = (
    "expected <root>/{train,devel,test}.jsonl (fields sentence, scenario, intent, recordings[{file}]) "
    "and the FLAC files they name in <root>/slurp_real/ (synthetic ones: <root>/train_synthetic.jsonl, <root>/slurp_synth/)"
)
WHERE = (
    "SLURP's annotations are at https://github.com/pswietojanski/slurp (dataset/slurp/) and its audio "
    "(slurp_real, slurp_synth) is fetched by that repository's scripts/download_audio.sh"
)
LABELS = ("scenario", "intent")


def _layout_error(root: Path, problem: str) -> DataError:
    return DataError(f"SLURP root {root}: {problem}; {LAYOUT}. {WHERE}")


def load_slurp(root: str | Path, label: str = "scenario", use_synthetic: bool = False, audio_dir: str | Path | None = None) -> Corpus:
    """Read train/devel/test jsonl; ``audio_dir`` holds slurp_real/ (and slurp_synth/), default the root."""
    if label not in LABELS:
        raise DataError(f"SLURP label must be one of {', '.join(LABELS)}, got '{label}'")
    root = Path(root).expanduser().resolve()
    audio = Path(audio_dir).expanduser().resolve() if audio_dir else root
    check_layout(root, audio, use_synthetic)
    splits = {split: _read_jsonl(root / name, audio / "slurp_real", label) for split, name in FILES.items()}
    metadata = [root / name for name in FILES.values()]
    if use_synthetic:
        splits["train"] = splits["train"] + _read_jsonl(root / SYNTH_FILE, audio / "slurp_synth", label)
        metadata.append(root / SYNTH_FILE)
    fingerprint = file_fingerprint(metadata, [u for utts in splits.values() for u in utts])
    name = f"slurp-{label}" + ("-synth" if use_synthetic else "")
    return Corpus(name=name, root=root, splits=splits, fingerprint=fingerprint)


def check_layout(root: Path, audio: Path, use_synthetic: bool = False) -> None:
    """Raise a DataError naming the first missing piece of the SLURP layout (no audio read)."""
    if not root.exists():
        raise _layout_error(root, "directory does not exist")
    if not root.is_dir():
        raise _layout_error(root, "is not a directory")
    needed = list(FILES.values()) + ([SYNTH_FILE] if use_synthetic else [])
    missing = [name for name in needed if not (root / name).is_file()]
    if missing:
        raise _layout_error(root, f"missing {', '.join(missing)}")
    folders = ["slurp_real"] + (["slurp_synth"] if use_synthetic else [])
    absent = [str(audio / folder) + "/" for folder in folders if not (audio / folder).is_dir()]
    if absent:
        raise _layout_error(root, f"missing audio folder {', '.join(absent)}")


def _read_jsonl(path: Path, audio: Path, label: str) -> list[Utterance]:
    utterances: list[Utterance] = []
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
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
    if not isinstance(recordings, list) or not all(isinstance(r, dict) and r.get("file") for r in recordings):
        raise DataError(f"{path}:{line_no}: 'recordings' must be a list of objects with a 'file'")
    speaker = str(entry.get("user_id", entry.get("slurp_id", "unknown")))
    return [Utterance(audio / r["file"], str(r.get("speaker", speaker)), str(entry["sentence"]), str(entry[label])) for r in recordings]
