"""The settings a run recorded, completed with the defaults of options added after it ran.

A child run logs every option of its scenario, model, method and train sections, defaults
included. An option added to the suite later (COCONUT's ``nspt.variant``, say) is therefore
missing from the runs made before it, and those runs ran as its default: an option is only
ever added with the default that keeps the old behaviour. Without filling that default in, an
old run and a new run of the same grid point differ in one key, get two labels, and a study
that appends seeds across suite versions would split one row in two.

Only the options of the entry the run itself names are filled (a replay run gets none of
COCONUT's keys), so an absent key still means "this method has no such option". An entry
that is no longer registered, or whose options need a value, fills nothing.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel, ValidationError

from suite import registry
from suite.errors import SuiteError
from suite.tracking import flatten

ENTRY_SECTIONS = ("scenario", "model", "method")


def with_current_defaults(settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` (flat ``section.key`` params) plus the current default of every option of its entries it lacks."""
    filled = dict(settings)
    for key, value in _defaults(*(settings.get(f"{section}.name") for section in ENTRY_SECTIONS)).items():
        filled.setdefault(key, value)
    return filled


@cache
def _defaults(scenario: str | None, model: str | None, method: str | None) -> dict[str, Any]:
    """Flat defaults of the named entries' options, and of the train options the method takes."""
    defaults: dict[str, Any] = {}
    for section, name in zip(ENTRY_SECTIONS, (scenario, model, method)):
        entry = _entry(section, name)
        if entry is not None:
            defaults.update(_option_defaults(section, entry.options))
            if section == "method":
                defaults.update(_option_defaults("train", entry.train_options))
    return defaults


def _entry(section: str, name: Any) -> Any:
    if not isinstance(name, str):
        return None
    try:
        return registry.get(section, name)
    except SuiteError:
        return None


def _option_defaults(section: str, options: type[BaseModel]) -> dict[str, Any]:
    try:
        return flatten({section: options.model_validate({}).model_dump(mode="json")})
    except ValidationError:
        return {}
