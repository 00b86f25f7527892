"""Converters to a RecBole atomic dataset: the ``user item1 item2 ...`` text format, and ``user,item,timestamp`` CSV.

Beauty, Sports and Yelp circulate in the text format in the CL4SRec/CoSeRec/MCLRec line of
work: one line per user, items in interaction order. RecBole's sequential models need an
order field, so the position of each item in its line becomes the ``timestamp`` column.
A ``.csv`` file is read as the common export format instead: a header naming ``user`` (or
``user_id``), ``item`` (or ``item_id``) and ``timestamp`` columns, one interaction per row,
the timestamps kept as they are (numbers; other columns are dropped).

A conversion either writes ``<out>/<name>/<name>.inter`` whole or leaves nothing behind:
the file is written under a temporary name and renamed at the end, and on any failure the
temporary file and every folder the conversion created are removed again. The result carries
a checksum (``suite.checksums``), checked whenever a scenario opens it. The input is never
written over, and an atomic file given as input (this command's own output) is refused: its
header would read as a user.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from scenarios.recsys.grammar import dataset_name
from suite.checksums import write_with_checksum
from suite.errors import DataError

HEADER = "user_id:token\titem_id:token\ttimestamp:float\n"
CSV_COLUMNS = {"user": ("user", "user_id"), "item": ("item", "item_id"), "timestamp": ("timestamp",)}
ATOMIC_HEADER = re.compile(r"^[^\s:]+:(token|token_seq|float|float_seq)(\t[^\s:]+:(token|token_seq|float|float_seq))*\r?$")


def convert_sequences(source: str | Path, out_dir: str | Path, name: str | None = None) -> Path:
    """Write ``<out_dir>/<name>/<name>.inter`` from ``source``; returns the .inter path."""
    source = Path(source)
    if not source.is_file():
        raise DataError(f"{source}: sequence file not found" if not source.exists() else f"{source}: not a file")
    name = name or source.stem
    try:
        dataset_name(name)
    except ValueError as error:
        raise DataError(f"--name {name!r}: the name becomes the RecBole dataset name and its folder: {error}") from None
    folder = Path(out_dir) / name
    target = folder / f"{name}.inter"
    _refuse_atomic_input(source)
    if target.exists() and target.samefile(source):
        raise DataError(f"{source}: the input would be overwritten by the output {target}; choose another --out or --name")
    with _created_folders(folder):
        try:
            writer = _write_csv if source.suffix.lower() == ".csv" else _write
            write_with_checksum(target, lambda tmp: writer(source, tmp))
        except OSError as error:
            raise DataError(f"{error.filename or target}: cannot write the converted dataset ({error.strerror or error})") from None
    return target


def _refuse_atomic_input(source: Path) -> None:
    """A RecBole atomic file (``name:type`` columns) is already converted: reading it as sequences gives garbage."""
    try:
        with source.open("rb") as handle:
            first = handle.readline(4096).decode("utf-8", errors="replace").rstrip("\n")
    except OSError as error:
        raise DataError(f"{source}: cannot read the sequence file ({error.strerror or error})") from None
    if ATOMIC_HEADER.match(first):
        raise DataError(
            f"{source}: already a RecBole atomic file (header {first.strip()!r}), not 'user item1 item2 ...' lines; "
            f"use it as it is: scenario: {{name: recbole, path: {source.resolve().parent}}}"
        )


def _write(source: Path, tmp: Path) -> None:
    """Stream ``source`` into ``tmp`` as an atomic ``.inter`` file; bad input raises before the rename."""
    users = 0
    with source.open("rb") as lines, tmp.open("w", encoding="utf-8") as out:
        out.write(HEADER)
        for number, raw in enumerate(lines, start=1):
            try:
                tokens = raw.decode("utf-8").split()
            except UnicodeDecodeError as error:
                raise DataError(f"{source}:{number}: not UTF-8 text (undecodable byte {raw[error.start : error.start + 1]!r})") from None
            if not tokens:
                continue
            if len(tokens) < 2:
                raise DataError(f"{source}:{number}: expected 'user item1 item2 ...', got only {tokens[0]!r}")
            user, items = tokens[0], tokens[1:]
            out.writelines(f"{user}\t{item}\t{position}\n" for position, item in enumerate(items))
            users += 1
    if users == 0:
        raise DataError(f"{source}: no sequences found (expected lines 'user item1 item2 ...')")


def _write_csv(source: Path, tmp: Path) -> None:
    """Stream a ``user,item,timestamp`` CSV into ``tmp``; a missing column, a tab in a value or a non-numeric time names its line."""
    rows = 0
    with source.open(encoding="utf-8", newline="") as handle, tmp.open("w", encoding="utf-8") as out:
        try:
            reader = csv.reader(handle)
            positions = _csv_positions(source, next(reader, []))
            out.write(HEADER)
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                out.write("\t".join(_csv_values(source, reader.line_num, row, positions)) + "\n")
                rows += 1
        except UnicodeDecodeError as error:
            raise DataError(f"{source}: not UTF-8 text (undecodable byte at offset {error.start})") from None
    if rows == 0:
        raise DataError(f"{source}: no interactions found (expected rows 'user,item,timestamp' after the header)")


def _csv_positions(source: Path, header: list[str]) -> list[int]:
    names = [cell.strip().lower() for cell in header]
    positions = []
    for role, accepted in CSV_COLUMNS.items():
        found = [names.index(name) for name in accepted if name in names]
        if not found:
            raise DataError(f"{source}:1: no {role} column in the header {','.join(header)!r}; expected {' or '.join(accepted)}")
        positions.append(found[0])
    return positions


def _csv_values(source: Path, line: int, row: list[str], positions: list[int]) -> list[str]:
    if len(row) <= max(positions):
        raise DataError(f"{source}:{line}: {len(row)} column(s), expected at least {max(positions) + 1}")
    user, item, time = (row[position].strip() for position in positions)
    if not user or not item or any(char in user + item for char in "\t\r\n"):
        raise DataError(f"{source}:{line}: user {user!r} / item {item!r}: expected non-empty values without tabs or newlines")
    try:
        float(time)
    except ValueError:
        raise DataError(f"{source}:{line}: timestamp {time!r} is not a number") from None
    return [user, item, time]


@contextmanager
def _created_folders(folder: Path) -> Iterator[None]:
    """Create ``folder`` (and missing parents); on failure remove the ones created here if they are empty."""
    missing = [path for path in (folder, *folder.parents) if not path.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"{error.filename or folder}: cannot create the output folder ({error.strerror or error})") from None
    try:
        yield
    except BaseException:
        for path in missing:  # deepest first
            try:
                path.rmdir()
            except OSError:
                break
        raise
