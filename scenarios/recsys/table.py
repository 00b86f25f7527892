"""A plugin's ``InteractionTable`` (the public, simple contract) as a RecBole atomic dataset.

The table is written into the cache as ``recbole-tables/<name>-<digest>/<name>-<digest>.inter``
(typed header ``user:token item:token time:float``), the digest being the sha256 of the bytes
written, with the suite's checksum record beside it: a copy that no longer matches it
(truncated, edited) is written again, never read. Then the ``recbole`` scenario's own build runs on it, so a table gets the same checks,
count filters and leave-one-out protocol as any atomic dataset.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import pandas as pd

from scenarios.recsys.atomic import AtomicFields, read_interactions
from scenarios.recsys.entries import RecBoleScenario, RecBoleScenarioOptions, build
from scenarios.recsys.grammar import dataset_name, field_name
from suite.api import BuildContext, DataError, InteractionProtocolOptions, InteractionTable, SpecError
from suite.checksums import ChecksumState, checksum_state, write_with_checksum

TABLE_FOLDER = "recbole-tables"


def scenario_from_table(table: InteractionTable, options: Any, ctx: BuildContext) -> RecBoleScenario:
    """The recbole scenario of ``table``, with the protocol of ``options`` when they are ``InteractionProtocolOptions``."""
    fields = _fields(table)
    frame = _frame(table, fields)
    folder = write_table(frame, _name(table.name), fields, Path(ctx.cache_dir))
    protocol = options if isinstance(options, InteractionProtocolOptions) else InteractionProtocolOptions()
    recbole_options = RecBoleScenarioOptions(
        path=str(folder),
        user_field=fields.user,
        item_field=fields.item,
        time_field=fields.time,
        user_inter_num_interval=protocol.user_inter_num_interval,
        item_inter_num_interval=protocol.item_inter_num_interval,
        max_seq_length=protocol.max_seq_length,
    )
    return build(recbole_options, ctx)


def write_table(frame: pd.DataFrame, name: str, fields: AtomicFields, cache_dir: Path) -> Path:
    """Write (or reuse, when its bytes still hash to its name) the atomic copy; the dataset folder."""
    text = _atomic_text(frame, fields)
    digest = hashlib.sha256(text.encode()).hexdigest()
    stem = f"{name[:64]}-{digest[:12]}"
    folder = cache_dir / TABLE_FOLDER / stem
    target = folder / f"{stem}.inter"
    if checksum_state(target) is not ChecksumState.MATCHES:
        folder.mkdir(parents=True, exist_ok=True)
        write_with_checksum(target, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return folder


def _fields(table: InteractionTable) -> AtomicFields:
    try:
        return AtomicFields(field_name(table.user_field), field_name(table.item_field), field_name(table.time_field))
    except ValueError as error:
        raise SpecError(f"InteractionTable '{table.name}': {error}") from None


def _name(name: str) -> str:
    try:
        return dataset_name(name)
    except ValueError as error:
        raise SpecError(f"InteractionTable name: {error}") from None


def _frame(table: InteractionTable, fields: AtomicFields) -> pd.DataFrame:
    """The user, item and time columns as text, checked: no tab or newline inside a value, numeric times."""
    if table.inter_file is not None:
        return read_interactions(Path(table.inter_file), fields)
    frame = table.frame[[fields.user, fields.item, fields.time]].astype(str)
    for column in (fields.user, fields.item):
        bad = frame[column].str.contains(r"[\t\r\n]", regex=True)
        if bad.any():
            raise DataError(f"InteractionTable '{table.name}': {column} value {frame[column][bad].iloc[0]!r} holds a tab or newline")
    bad = pd.to_numeric(frame[fields.time], errors="coerce").isna()
    if bad.any():
        row = int(bad.to_numpy().argmax())
        shown = f"{frame[fields.time].iloc[row]!r} is not a number"
        raise DataError(f"InteractionTable '{table.name}': row {row}: {fields.time} {shown} ({int(bad.sum())} such rows)")
    return frame


def _atomic_text(frame: pd.DataFrame, fields: AtomicFields) -> str:
    buffer = io.StringIO()
    buffer.write(f"{fields.user}:token\t{fields.item}:token\t{fields.time}:float\n")
    frame.to_csv(buffer, sep="\t", header=False, index=False, lineterminator="\n")
    return buffer.getvalue()
