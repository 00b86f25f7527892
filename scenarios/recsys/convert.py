"""Converter from the ``user item1 item2 ...`` text format to a RecBole atomic dataset.

Beauty, Sports and Yelp circulate in this format in the CL4SRec/CoSeRec/MCLRec line of
work: one line per user, items in interaction order. RecBole's sequential models need an
order field, so the position of each item in its line becomes the ``timestamp`` column.
"""

from __future__ import annotations

import os
from pathlib import Path

from suite.errors import DataError

HEADER = "user_id:token\titem_id:token\ttimestamp:float\n"


def convert_sequences(source: str | Path, out_dir: str | Path, name: str | None = None) -> Path:
    """Write ``<out_dir>/<name>/<name>.inter`` from ``source``; returns the .inter path."""
    source = Path(source)
    if not source.is_file():
        raise DataError(f"{source}: sequence file not found")
    name = name or source.stem
    folder = Path(out_dir) / name
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}.inter"
    tmp = target.with_suffix(f".tmp{os.getpid()}")
    users = 0
    with source.open(encoding="utf-8") as lines, tmp.open("w", encoding="utf-8") as out:
        out.write(HEADER)
        for number, line in enumerate(lines, start=1):
            tokens = line.split()
            if not tokens:
                continue
            if len(tokens) < 2:
                tmp.unlink()
                raise DataError(f"{source}:{number}: expected 'user item1 item2 ...', got only {tokens[0]!r}")
            user, items = tokens[0], tokens[1:]
            out.writelines(f"{user}\t{item}\t{position}\n" for position, item in enumerate(items))
            users += 1
    if users == 0:
        tmp.unlink()
        raise DataError(f"{source}: no sequences found (expected lines 'user item1 item2 ...')")
    tmp.replace(target)
    return target
