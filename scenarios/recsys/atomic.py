"""Where a RecBole atomic dataset lives, what RecBole will keep of it, and whether leave-one-out can use it.

``dataset: ml-100k`` is the copy shipped inside RecBole's wheel; ``path: /dir/<name>`` is
any atomic dataset (``/dir/<name>/<name>.inter``). Problems are ``DataError``s that name
the file (and the line) and what is wrong, found before RecBole is asked to read anything:
the scenario's pre-flight check runs all of this before any MLflow run exists.

What RecBole keeps is computed here the way RecBole computes it
(``Dataset._filter_nan_user_or_item`` then ``Dataset._filter_by_inter_num``): rows without
a user or item are dropped, then users and items outside their count intervals are
dropped over and over until none is left to drop (a k-core when both lower bounds are k).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pandas as pd

from scenarios.recsys.grammar import Interval, dataset_name, parse_interval
from suite.checksums import ChecksumState, checksum_file, checksum_state, write_with_checksum
from suite.errors import DataError
from suite.paths import exclusive_lock, resolved

SHIPPED = ("ml-100k",)
MIN_INTERACTIONS = 3  # leave-one-out needs a training item, a validation item and a test item
FEATURE_TYPES = ("token", "token_seq", "float", "float_seq")  # RecBole's FeatureType values
ROLE_TYPES = {"user": "token", "item": "token", "order (time)": "float"}
SUBSET_FORMAT = 2  # bump when the subset file layout changes: old cache entries are then never reused


@dataclass(frozen=True)
class AtomicFields:
    """The user, item and order (time) fields of an ``.inter`` file."""

    user: str = "user_id"
    item: str = "item_id"
    time: str = "timestamp"

    def by_role(self) -> dict[str, str]:
        return {"user": self.user, "item": self.item, "order (time)": self.time}


@dataclass(frozen=True)
class Filters:
    """RecBole's count filters: ``user_inter_num_interval`` and ``item_inter_num_interval``."""

    user: str | None = None
    item: str | None = None


@dataclass(frozen=True)
class AtomicDataset:
    """A validated atomic dataset: ``data_path/<name>/<name>.inter``, and what RecBole will keep of it."""

    name: str
    data_path: Path  # the folder that holds the <name>/ folder
    fields: AtomicFields
    users: int
    items: int
    interactions: int
    digest: str  # sha256 of the .inter file RecBole reads
    source: Path  # the user's .inter file (the subset's origin when max_users is set)
    label: str  # what a person calls it: 'ml-100k', or 'ml-100k-u20' for its first 20 users

    @property
    def inter_file(self) -> Path:
        return self.data_path / self.name / f"{self.name}.inter"


@dataclass(frozen=True)
class Kept:
    """What RecBole keeps after its filters: counts, for the pre-flight and the run's record."""

    users: int
    items: int
    interactions: int


def shipped_dataset_dir(name: str) -> Path:
    """The folder of a dataset shipped inside RecBole's wheel."""
    import recbole

    return Path(recbole.__file__).resolve().parent / "dataset_example" / name


def locate(dataset: str, path: str | None) -> tuple[str, Path]:
    """(name, folder holding <name>.inter) from the scenario options."""
    if path is not None:
        folder = resolved(path)
        if not folder.is_dir():
            raise DataError(
                f"{path}: dataset folder not found (expected {folder}/{folder.name}.inter; "
                "the Beauty/Sports/Yelp text files convert with `suite convert-sequences`)"
            )
        try:
            dataset_name(folder.name)
        except ValueError as error:
            raise DataError(f"{path}: the folder name is the RecBole dataset name: {error}") from None
        return folder.name, folder
    if dataset in SHIPPED:
        return dataset, shipped_dataset_dir(dataset)
    raise DataError(
        f"dataset '{dataset}' is not shipped with RecBole (shipped: {', '.join(SHIPPED)}); "
        "give scenario.path: /dir/<name> holding <name>.inter"
    )


@contextlib.contextmanager
def _decoding(path: Path) -> Iterator[None]:
    """Undecodable bytes, and a file the OS will not let us read, become one line that names the file."""
    try:
        yield
    except UnicodeDecodeError as error:
        byte = error.object[error.start : error.start + 1]
        raise DataError(f"{path}: not UTF-8 text (undecodable byte {byte!r} at offset {error.start})") from None
    except OSError as error:
        raise DataError(f"{error.filename or path}: cannot read the interaction file ({error.strerror or error})") from None


def check_recorded(inter_file: Path) -> None:
    """A file written with a checksum (``suite convert-sequences``'s output) must still match it."""
    if checksum_state(inter_file) is ChecksumState.MISMATCH:
        raise DataError(
            f"{inter_file}: changed since it was written (it no longer matches {checksum_file(inter_file).name}); "
            "convert it again with `suite convert-sequences`, or delete the .xxh3 file if the change is intended"
        )


def read_header(inter_file: Path) -> dict[str, str]:
    """Field name -> RecBole type from the header line ``name:type<TAB>...``, checked the way RecBole reads it."""
    with _decoding(inter_file):
        if not inter_file.is_file():
            raise DataError(f"{inter_file}: interaction file not found")
        with inter_file.open(encoding="utf-8", newline="") as handle:
            header = handle.readline()
    if header.endswith("\r\n"):
        raise DataError(f"{inter_file}: Windows line endings (CRLF); RecBole reads the last header type with a '\\r' (convert to LF)")
    columns = {}
    for column in header.rstrip("\n").split("\t"):
        name, sep, kind = column.partition(":")
        if not sep or kind not in FEATURE_TYPES:
            raise DataError(f"{inter_file}: header column {column!r}: expected name:type with type one of {', '.join(FEATURE_TYPES)}")
        columns[name] = kind
    return columns


def check_fields(inter_file: Path, fields: AtomicFields) -> None:
    """Each of the user, item and order fields must be a column of the ``.inter`` file, of the type RecBole needs."""
    columns = read_header(inter_file)
    listed = ", ".join(f"{key}:{kind}" for key, kind in columns.items())
    for role, name in fields.by_role().items():
        if name not in columns:
            raise DataError(f"{inter_file}: missing the {role} field '{name}' (columns: {listed})")
        if columns[name] != ROLE_TYPES[role]:
            raise DataError(f"{inter_file}: the {role} field '{name}' is {columns[name]}, expected {name}:{ROLE_TYPES[role]}")


def read_interactions(inter_file: Path, fields: AtomicFields) -> pd.DataFrame:
    """The user, item and time columns as strings (missing values as NaN, as RecBole reads them)."""
    columns = read_header(inter_file)
    names = [f"{name}:{columns[name]}" for name in (fields.user, fields.item, fields.time)]
    with _decoding(inter_file):
        try:
            frame = pd.read_csv(inter_file, sep="\t", usecols=names, dtype=str, encoding="utf-8")
        except pd.errors.ParserError as error:
            raise DataError(f"{inter_file}: not a tab-separated atomic file ({' '.join(str(error).split())})") from None
    frame.columns = [fields.user, fields.item, fields.time]
    check_timestamps(inter_file, frame, fields.time)
    return frame


def check_timestamps(inter_file: Path, frame: pd.DataFrame, time_field: str) -> None:
    """Every order value must be a number: RecBole would stop on text, and fill a missing one with the mean."""
    numbers = pd.to_numeric(frame[time_field], errors="coerce")
    bad = numbers.isna()
    if bad.any():
        row = int(bad.to_numpy().argmax())
        value = frame[time_field].iloc[row]
        shown = "missing" if pd.isna(value) else f"{value!r} is not a number"
        raise DataError(f"{inter_file}:{_line_of_row(inter_file, row)}: {time_field} {shown} ({int(bad.sum())} such rows)")


def _line_of_row(inter_file: Path, row: int) -> int:
    """The file line of data row ``row`` (0-based), counting the header and the blank lines pandas skips."""
    seen = -1
    with inter_file.open(encoding="utf-8") as handle:
        next(handle)
        for number, line in enumerate(handle, start=2):
            if line.strip("\r\n"):
                seen += 1
                if seen == row:
                    return number
    return row + 2


def first_users(frame: pd.DataFrame, fields: AtomicFields, max_users: int | None) -> pd.DataFrame:
    """The rows of the first ``max_users`` users in file order (all rows when None)."""
    if max_users is None:
        return frame
    users = pd.unique(frame[fields.user].dropna())[:max_users]
    return frame[frame[fields.user].isin(set(users))]


def recbole_filter(frame: pd.DataFrame, fields: AtomicFields, filters: Filters) -> pd.DataFrame:
    """The rows RecBole keeps: no missing user or item, then the count intervals iterated until stable."""
    kept = frame.dropna(subset=[fields.user, fields.item])
    user_interval = parse_interval(filters.user) if filters.user else None
    item_interval = parse_interval(filters.item) if filters.item else None
    while user_interval or item_interval:
        drop = _outside(kept[fields.user], user_interval) | _outside(kept[fields.item], item_interval)
        if not drop.any():
            break
        kept = kept[~drop]
    return kept


def _outside(ids: pd.Series, interval: Interval | None) -> pd.Series:
    """Rows whose id has a count outside ``interval`` (none when there is no interval)."""
    if interval is None:
        return pd.Series(False, index=ids.index)
    inside = ids.value_counts().map(interval.contains)
    return ~ids.map(inside).astype(bool)


def check_leave_one_out(inter_file: Path, frame: pd.DataFrame, fields: AtomicFields, filters: Filters) -> Kept:
    """After RecBole's filters some users must remain, each with >= 3 interactions."""
    kept = recbole_filter(frame, fields, filters)
    counts = kept.groupby(fields.user).size()
    if counts.empty:
        raise DataError(
            f"{inter_file}: no users left for leave-one-out after filtering "
            f"(user_inter_num_interval {filters.user!r}, item_inter_num_interval {filters.item!r}; "
            f"{frame[fields.user].nunique()} users, {frame[fields.item].nunique()} items before)"
        )
    short = counts[counts < MIN_INTERACTIONS]
    if not short.empty:
        raise DataError(
            f"{inter_file}: {len(short)} users have fewer than {MIN_INTERACTIONS} interactions, too few for "
            f"leave-one-out (e.g. user {short.index[0]!r} has {int(short.iloc[0])}); "
            "set scenario.user_inter_num_interval: '[3,inf)'"
        )
    return Kept(users=len(counts), items=int(kept[fields.item].nunique()), interactions=len(kept))


def kept_after_filters(inter_file: Path, fields: AtomicFields, max_users: int | None, filters: Filters) -> Kept:
    """Read, check and filter ``inter_file`` as RecBole will (the first ``max_users`` users when set)."""
    check_fields(inter_file, fields)
    check_recorded(inter_file)
    stat = inter_file.stat()
    return _kept_of_version(str(inter_file), stat.st_size, stat.st_mtime_ns, fields, max_users, filters)


@lru_cache(maxsize=32)
def _kept_of_version(path: str, size: int, mtime_ns: int, fields: AtomicFields, max_users: int | None, filters: Filters) -> Kept:
    """One read per file version and options in a process: a sweep's grid points share the check."""
    inter_file = Path(path)
    frame = first_users(read_interactions(inter_file, fields), fields, max_users)
    return check_leave_one_out(inter_file, frame, fields, filters)


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes: the identity of a dataset version, and the key of every cache derived from it."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@lru_cache(maxsize=32)
def _digest_of_version(path: str, size: int, mtime_ns: int) -> str:
    return file_digest(Path(path))


def content_digest(path: Path) -> str:
    """``file_digest``, computed once per file version in a process (a sweep checks one file many times)."""
    stat = path.stat()
    return _digest_of_version(str(path), stat.st_size, stat.st_mtime_ns)


def subset_key(source_digest: str, fields: AtomicFields, max_users: int) -> str:
    """The cache key of a subset: the source's content and every option that shapes the subset."""
    shape = {"source": source_digest, "fields": [fields.user, fields.item, fields.time], "max_users": max_users, "format": SUBSET_FORMAT}
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()


def write_subset(frame: pd.DataFrame, source: Path, fields: AtomicFields, max_users: int, cache_dir: Path) -> tuple[str, Path]:
    """Copy the first ``max_users`` users (in file order) into an atomic dataset of their own.

    The copy is named after the source's content hash and the options that shape it, so a
    different file with the same name, or the same file after a fix, never reuses a stale copy.
    It carries a checksum (``suite.checksums``): a copy that no longer matches it (truncated,
    damaged, edited) is announced on stderr and rebuilt, never trained on.
    """
    key = subset_key(content_digest(source), fields, max_users)
    name = f"{source.stem[:64]}-u{max_users}-{key[:12]}"
    folder = cache_dir / "recbole-subsets" / name
    target = folder / f"{name}.inter"
    folder.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(folder.with_name(f"{name}.lock")):
        state = checksum_state(target)
        if state is not ChecksumState.MATCHES:
            if state is ChecksumState.MISMATCH:
                print(f"{target}: subset cache does not match the checksum recorded when it was written; rebuilding it", file=sys.stderr)
            columns = read_header(source)
            subset = first_users(frame, fields, max_users)
            header = "\t".join(f"{key}:{columns[key]}" for key in (fields.user, fields.item, fields.time))

            def write(tmp: Path) -> None:
                with tmp.open("w", encoding="utf-8") as handle:
                    handle.write(header + "\n")
                    subset.to_csv(handle, sep="\t", header=False, index=False)

            write_with_checksum(target, write)
    _copy_item_file(source.with_suffix(".item"), folder / f"{name}.item")
    return name, folder.parent


def _copy_item_file(source: Path, target: Path) -> None:
    """The source's item features beside the subset (models that read item attributes, e.g. S3Rec, load them)."""
    if source.is_file() and not target.is_file():
        tmp = target.with_suffix(f".tmp{os.getpid()}")
        try:
            shutil.copyfile(source, tmp)
            tmp.replace(target)
        finally:
            tmp.unlink(missing_ok=True)
