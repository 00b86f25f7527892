"""A sequential scenario from a ``user,item,timestamp`` CSV file, written from ``suite.api`` alone.

The scenario returns an ``InteractionTable``: the suite writes it as a RecBole atomic
dataset, applies the count filters of the protocol options it inherits
(``user_inter_num_interval``, ``item_inter_num_interval``, ``max_seq_length``) and the
leave-one-out protocol. (The same file also converts to an atomic dataset with
``suite convert-sequences``, with no plugin at all; a plugin is for data that needs code.)

Register it in the package's metadata::

    [options.entry_points]
    suite.scenarios =
        csv-interactions = csv_interactions:CSV_INTERACTIONS
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from pydantic import Field

from suite.api import BuildContext, DataError, InteractionProtocolOptions, InteractionTable, ScenarioEntry

COLUMNS = ("user", "item", "timestamp")


class CSVInteractionsOptions(InteractionProtocolOptions):
    path: str = Field(description="a CSV file with a header user,item,timestamp")


def check(options: CSVInteractionsOptions) -> None:
    """Pre-flight: the file exists and has the three columns."""
    _read(Path(options.path))


def build(options: CSVInteractionsOptions, context: BuildContext) -> InteractionTable:
    path = Path(options.path)
    return InteractionTable(name=path.stem, frame=_read(path), user_field="user", item_field="item", time_field="timestamp")


def _read(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{path}: file not found (expected a CSV with the header {','.join(COLUMNS)})")
    frame = pd.read_csv(path, dtype=str)
    missing = [column for column in COLUMNS if column not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; its header: {','.join(frame.columns)}")
    return frame


CSV_INTERACTIONS = ScenarioEntry(
    name="csv-interactions",
    family="sequential",
    options=CSVInteractionsOptions,
    build=build,
    check=check,
    description="user,item,timestamp CSV, leave-one-out next-item recommendation",
)
