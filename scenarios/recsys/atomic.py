"""Where a RecBole atomic dataset lives, and whether it can be used for leave-one-out.

``dataset: ml-100k`` is the copy shipped inside RecBole's wheel; ``path: /dir/<name>`` is
any atomic dataset (``/dir/<name>/<name>.inter``). Problems are ``DataError``s that name
the file and what is wrong, before RecBole is asked to read anything.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from suite.errors import DataError

SHIPPED = ("ml-100k",)
MIN_INTERACTIONS = 3  # leave-one-out needs a training item, a validation item and a test item


@dataclass(frozen=True)
class AtomicFields:
    """The user, item and order (time) fields of an ``.inter`` file."""

    user: str = "user_id"
    item: str = "item_id"
    time: str = "timestamp"


@dataclass(frozen=True)
class AtomicDataset:
    """A validated atomic dataset: ``data_path/<name>/<name>.inter``."""

    name: str
    data_path: Path  # the folder that holds the <name>/ folder
    fields: AtomicFields
    users: int
    interactions: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def inter_file(self) -> Path:
        return self.data_path / self.name / f"{self.name}.inter"


def shipped_dataset_dir(name: str) -> Path:
    """The folder of a dataset shipped inside RecBole's wheel."""
    import recbole

    return Path(recbole.__file__).resolve().parent / "dataset_example" / name


def locate(dataset: str, path: str | None) -> tuple[str, Path]:
    """(name, folder holding <name>.inter) from the scenario options."""
    if path is not None:
        folder = Path(path).expanduser().resolve()
        if not folder.is_dir():
            raise DataError(
                f"{path}: dataset folder not found (expected {folder}/{folder.name}.inter; "
                "the Beauty/Sports/Yelp text files convert with `suite convert-sequences`)"
            )
        return folder.name, folder
    if dataset in SHIPPED:
        return dataset, shipped_dataset_dir(dataset)
    raise DataError(
        f"dataset '{dataset}' is not shipped with RecBole (shipped: {', '.join(SHIPPED)}); "
        "give scenario.path: /dir/<name> holding <name>.inter"
    )


def read_header(inter_file: Path) -> dict[str, str]:
    """Field name -> RecBole type from the header line ``name:type<TAB>...``."""
    if not inter_file.is_file():
        raise DataError(f"{inter_file}: interaction file not found")
    with inter_file.open(encoding="utf-8") as handle:
        header = handle.readline().rstrip("\n\r")
    columns = {}
    for column in header.split("\t"):
        name, _, kind = column.partition(":")
        columns[name.strip()] = kind.strip()
    return columns


def check_fields(inter_file: Path, fields: AtomicFields) -> None:
    """Each of the user, item and order fields must be a column of the ``.inter`` file."""
    columns = read_header(inter_file)
    for role, name in (("user", fields.user), ("item", fields.item), ("order (time)", fields.time)):
        if name not in columns:
            listed = ", ".join(f"{key}:{kind}" for key, kind in columns.items())
            raise DataError(f"{inter_file}: missing the {role} field '{name}' (columns: {listed})")


def read_interactions(inter_file: Path, fields: AtomicFields) -> pd.DataFrame:
    columns = read_header(inter_file)
    names = [f"{name}:{columns[name]}" for name in (fields.user, fields.item, fields.time)]
    frame = pd.read_csv(inter_file, sep="\t", usecols=names, dtype=str, keep_default_na=False)
    frame.columns = [fields.user, fields.item, fields.time]
    return frame


def lower_bound(interval: str | None) -> float:
    """The lower bound of a RecBole interval string such as '[3,inf)' or '(2,10]'."""
    if not interval:
        return 0.0
    match = re.fullmatch(r"\s*([\[(])\s*([^,]*)\s*,\s*([^\])]*)\s*[\])]\s*", interval)
    if not match:
        raise DataError(f"user_inter_num_interval '{interval}': expected an interval such as '[3,inf)'")
    low = float(match.group(2) or 0)
    return low if match.group(1) == "[" else math.floor(low) + 1


def check_leave_one_out(inter_file: Path, frame: pd.DataFrame, fields: AtomicFields, interval: str | None) -> int:
    """Users kept by the interval must each have >= 3 interactions, and some must remain."""
    counts = frame.groupby(fields.user).size()
    kept = counts[counts >= lower_bound(interval)]
    if kept.empty:
        raise DataError(
            f"{inter_file}: no users left for leave-one-out after filtering "
            f"(user_inter_num_interval {interval!r}; {len(counts)} users before)"
        )
    short = kept[kept < MIN_INTERACTIONS]
    if not short.empty:
        raise DataError(
            f"{inter_file}: {len(short)} users have fewer than {MIN_INTERACTIONS} interactions, too few for "
            f"leave-one-out (e.g. user {short.index[0]!r} has {int(short.iloc[0])}); "
            "set scenario.user_inter_num_interval: '[3,inf)'"
        )
    return len(kept)


def write_subset(frame: pd.DataFrame, source: Path, fields: AtomicFields, max_users: int, cache_dir: Path) -> tuple[str, Path]:
    """Copy the first ``max_users`` users (in file order) into an atomic dataset of their own."""
    users = pd.unique(frame[fields.user])[:max_users]
    name = f"{source.stem}-u{max_users}"
    folder = cache_dir / "recbole-subsets" / name
    target = folder / f"{name}.inter"
    if not target.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        columns = read_header(source)
        subset = frame[frame[fields.user].isin(set(users))]
        header = "\t".join(f"{key}:{columns[key]}" for key in (fields.user, fields.item, fields.time))
        tmp = target.with_suffix(f".tmp{os.getpid()}")
        with tmp.open("w", encoding="utf-8") as handle:
            handle.write(header + "\n")
            subset.to_csv(handle, sep="\t", header=False, index=False)
        tmp.replace(target)
    return name, folder.parent
