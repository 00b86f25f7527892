"""The ``recbole`` scenario: a RecBole atomic dataset, validated, as a config fragment.

A scenario never trains: ``build`` checks the data and returns the dataset half of the
RecBole config (where the files are, which fields to load, the leave-one-out protocol).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import Field

from scenarios.recsys.atomic import AtomicDataset, AtomicFields, check_fields, check_leave_one_out, locate, read_interactions, write_subset
from suite.api import BuildContext, Options, ScenarioEntry

LEAVE_ONE_OUT = {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"}


class RecBoleScenarioOptions(Options):
    """Which dataset, its field names, and the filters applied before splitting."""

    dataset: str = "ml-100k"
    path: str | None = None
    user_field: str = "user_id"
    item_field: str = "item_id"
    time_field: str = "timestamp"
    max_users: int | None = Field(default=None, gt=0)
    user_inter_num_interval: str = "[3,inf)"
    item_inter_num_interval: str | None = None
    max_seq_length: int = Field(default=50, gt=0)


@dataclass(frozen=True)
class RecBoleScenario:
    """A validated dataset and the RecBole config fragment that describes it."""

    dataset: AtomicDataset
    options: RecBoleScenarioOptions

    def config_fragment(self) -> dict[str, Any]:
        fields = self.dataset.fields
        return {
            "data_path": str(self.dataset.data_path),
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
    """Pre-flight: the dataset folder, its ``.inter`` file and the named fields exist (header only)."""
    name, folder = locate(options.dataset, options.path)
    check_fields(folder / f"{name}.inter", AtomicFields(options.user_field, options.item_field, options.time_field))


def build(options: RecBoleScenarioOptions, ctx: BuildContext) -> RecBoleScenario:
    """Locate and validate the dataset (a subset copy when ``max_users`` is set)."""
    fields = AtomicFields(options.user_field, options.item_field, options.time_field)
    name, folder = locate(options.dataset, options.path)
    inter_file = folder / f"{name}.inter"
    check_fields(inter_file, fields)
    frame = read_interactions(inter_file, fields)
    data_path = folder.parent
    if options.max_users is not None:
        name, data_path = write_subset(frame, inter_file, fields, options.max_users, ctx.cache_dir)
        frame = frame[frame[fields.user].isin(set(frame[fields.user].unique()[: options.max_users]))]
    users = check_leave_one_out(inter_file, frame, fields, options.user_inter_num_interval)
    dataset = AtomicDataset(name=name, data_path=data_path, fields=fields, users=users, interactions=len(frame))
    return RecBoleScenario(dataset=dataset, options=options)


RECBOLE = ScenarioEntry(
    name="recbole",
    family="sequential",
    options=RecBoleScenarioOptions,
    build=build,
    check=check,
    description="RecBole atomic dataset (ml-100k shipped, or any by path), leave-one-out, full ranking",
)
