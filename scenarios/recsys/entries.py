"""The ``recbole`` scenario: a RecBole atomic dataset, validated, as a config fragment.

A scenario never trains: ``build`` checks the data and returns the dataset half of the
RecBole config (where the files are, which fields to load, the leave-one-out protocol).
Every string option is checked against its grammar when the spec is read (RecBole
``eval``s config strings), and ``check`` reads the data the way RecBole will (count
filters iterated to a k-core, leave-one-out) before any MLflow run exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from scenarios.recsys.atomic import (
    AtomicDataset,
    AtomicFields,
    Filters,
    content_digest,
    kept_after_filters,
    locate,
    read_interactions,
    write_subset,
)
from scenarios.recsys.grammar import dataset_name, field_name
from suite.api import BuildContext, InteractionProtocolOptions, ScenarioEntry

LEAVE_ONE_OUT = {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"}


class RecBoleScenarioOptions(InteractionProtocolOptions):
    """Which dataset, its field names, and (inherited) the filters applied before splitting (RecBole's keys)."""

    dataset: str = Field(default="ml-100k", description="a dataset shipped with RecBole (ml-100k), used when path is not set")
    path: str | None = Field(default=None, description="folder <name>/ holding <name>.inter; its name is the dataset name")
    user_field: str = "user_id"
    item_field: str = "item_id"
    time_field: str = "timestamp"
    max_users: int | None = Field(default=None, gt=0, description="keep the first N users (file order), for quick runs")

    _dataset_name = field_validator("dataset")(dataset_name)
    _field_names = field_validator("user_field", "item_field", "time_field")(field_name)

    @field_validator("path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        """The folder's own name becomes RecBole's dataset name; control characters are refused outright."""
        if value is None:
            return None
        if any(ord(char) < 32 for char in value):
            raise ValueError(f"expected a folder path, got {value!r} (control characters)")
        name = Path(value).expanduser().name
        if name not in ("", ".", ".."):
            try:
                dataset_name(name)
            except ValueError as error:
                raise ValueError(f"the folder name {name!r} becomes RecBole's dataset name: {error}") from None
        return value

    def fields(self) -> AtomicFields:
        return AtomicFields(self.user_field, self.item_field, self.time_field)

    def filters(self) -> Filters:
        return Filters(self.user_inter_num_interval, self.item_inter_num_interval)


@dataclass(frozen=True)
class RecBoleScenario:
    """A validated dataset and the RecBole config fragment that describes it."""

    dataset: AtomicDataset
    options: RecBoleScenarioOptions

    def config_fragment(self) -> dict[str, Any]:
        fields = self.dataset.fields
        return {
            "data_path": str(self.dataset.data_path.resolve()),
            "dataset": self.dataset.name,
            "USER_ID_FIELD": fields.user,
            "ITEM_ID_FIELD": fields.item,
            "TIME_FIELD": fields.time,
            "load_col": {"inter": [fields.user, fields.item, fields.time]},
            "user_inter_num_interval": self.options.user_inter_num_interval,
            "item_inter_num_interval": self.options.item_inter_num_interval,
            "MAX_ITEM_LIST_LENGTH": self.options.max_seq_length,
            "eval_args": dict(LEAVE_ONE_OUT),
            "repeatable": True,
        }


def check(options: RecBoleScenarioOptions) -> None:
    """Pre-flight: the dataset exists, reads as RecBole reads it, and leaves users for leave-one-out after filtering."""
    name, folder = locate(options.dataset, options.path)
    kept_after_filters(folder / f"{name}.inter", options.fields(), options.max_users, options.filters())


def build(options: RecBoleScenarioOptions, ctx: BuildContext) -> RecBoleScenario:
    """Locate and validate the dataset (a subset copy, keyed by content, when ``max_users`` is set)."""
    fields = options.fields()
    name, folder = locate(options.dataset, options.path)
    inter_file = folder / f"{name}.inter"
    kept = kept_after_filters(inter_file, fields, options.max_users, options.filters())
    data_path = folder.parent
    if options.max_users is not None:
        frame = read_interactions(inter_file, fields)
        name, data_path = write_subset(frame, inter_file, fields, options.max_users, ctx.cache_dir)
    digest = content_digest(data_path / name / f"{name}.inter")
    dataset = AtomicDataset(
        name=name,
        data_path=data_path,
        fields=fields,
        users=kept.users,
        items=kept.items,
        interactions=kept.interactions,
        digest=digest,
        source=inter_file,
        label=inter_file.stem if options.max_users is None else f"{inter_file.stem}-u{options.max_users}",
    )
    return RecBoleScenario(dataset=dataset, options=options)


RECBOLE = ScenarioEntry(
    name="recbole",
    family="sequential",
    options=RecBoleScenarioOptions,
    build=build,
    check=check,
    description="RecBole atomic dataset (ml-100k shipped, or any by path), count filters (k-core), leave-one-out, full ranking",
)
