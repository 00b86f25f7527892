"""One readable line for a spec problem: which file, override and key, what was wrong, what would do.

Values are shown bounded (``reprlib`` limits, applied while the repr is built), so a huge or
adversarial value in a spec never makes its own error message expensive.
"""

from __future__ import annotations

import difflib
import reprlib
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

_BRIEF = reprlib.Repr()  # repr for values shown in messages: bounded however large the value (never the whole input)
_BRIEF.maxlevel, _BRIEF.maxdict, _BRIEF.maxlist, _BRIEF.maxstring, _BRIEF.maxother, _BRIEF.maxlong = 3, 6, 6, 80, 80, 80


def describe_problem(error: ValidationError, model: type[BaseModel], prefix: tuple[str, ...], source: str, overrides: Sequence[Any]) -> str:
    """One readable line for the first problem pydantic found."""
    problems = error.errors()
    first = problems[0]
    loc = prefix + tuple(str(part) for part in first["loc"])
    key = ".".join(loc)
    origin = _override_for(loc, overrides)
    where = f"{source}: override '{origin.text}'" if origin else source
    if first["type"] == "extra_forbidden":
        known = _field_names(model, tuple(first["loc"][:-1]))
        message = f"{where}: unknown key '{key}'{_did_you_mean(loc[-1], known)}"
    elif first["type"] == "missing":
        message = f"{where}: missing required key '{key}'"
    elif first["type"] == "value_error":  # a validator's own message: its case is meaningful (names, keys)
        message = f"{where}: {key}: {first['msg'].removeprefix('Value error, ')}, got {short(repr(first.get('input')))}"
    else:
        message = f"{where}: {key}: {first['msg'].lower()}, got {_brief(first.get('input'))}"
    if len(problems) > 1:
        message += f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})"
    return message


def _override_for(loc: tuple[str, ...], overrides: Sequence[Any]) -> Any:
    for override in reversed(overrides):
        if tuple(loc[: len(override.path)]) == override.path or override.path[: len(loc)] == loc:
            return override
    return None


def _did_you_mean(word: str, known: list[str]) -> str:
    close = difflib.get_close_matches(word, known, n=1)
    if close:
        return f" (did you mean '{close[0]}'?)"
    return f"; expected one of: {', '.join(known)}" if known else ""


def _field_names(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names of the (nested) pydantic model at ``loc``, for suggestions."""
    current: Any = model
    for part in loc:
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return []
        current = model_in(fields[part].annotation)
        if current is None:
            return []
    return list(getattr(current, "model_fields", {}))


def model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in getattr(annotation, "__args__", ()) or ():
        found = model_in(argument)
        if found is not None:
            return found
    return None


def _brief(value: Any) -> str:
    """A value for a message: a string's repr shortened, a container's repr bounded before it is built."""
    return short(repr(value) if isinstance(value, str) else _BRIEF.repr(value))


def short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else f"{text[: limit - 3]}... ({len(text)} characters)"


def first_line(error: Exception) -> str:
    return " ".join(str(error).split())
