"""Dotted overrides from the command line (``-o train.epochs=3``): parsed, applied to a spec tree, typed.

A value is read as YAML (``[0,1]``, ``0.5``, ``null``), except where the option it sets is a
string: there it is exactly what was typed (``[5,inf)``, ``cuda:1``, ``yes``). Whether an
option is a string is known only once the entry the section names is known, so ``suite.spec``
calls ``retype_overrides`` section by section and ``reject_unparsed`` after.
"""

from __future__ import annotations

import copy
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel

from suite.bounded_yaml import safe_load_bounded
from suite.errors import SpecError
from suite.spec_messages import first_line, model_in, short


@dataclass
class Override:
    """One ``-o dotted.path=value`` from the command line.

    The value is read as YAML (``[0,1]``, ``0.5``, ``null``), but a key whose option is a
    string gets exactly what was typed (``[5,inf)``, ``cuda:1``, ``yes``): see ``retype_overrides``.
    """

    text: str
    path: tuple[str, ...]
    value: Any
    raw: str = ""
    yaml_error: str | None = None

    @classmethod
    def parse(cls, text: str) -> Override:
        key, sep, raw = text.partition("=")
        if not sep or not key.strip():
            raise SpecError(f"override '{text}': expected KEY=VALUE, e.g. train.epochs=3")
        path = tuple(part.strip() for part in key.strip().split("."))
        if any(not part for part in path):
            raise SpecError(f"override '{text}': empty component in key '{key}'")
        try:
            return cls(text=text, path=path, value=safe_load_bounded(raw) if raw.strip() else None, raw=raw)
        except SpecError as error:
            raise SpecError(f"override '{short(text)}': {error}") from None
        except yaml.YAMLError as error:  # fine for a string option; an error for any other (decided in resolve)
            return cls(text=text, path=path, value=raw, raw=raw, yaml_error=first_line(error))


def apply_overrides(tree: dict[str, Any], overrides: Iterable[Override], source: str) -> dict[str, Any]:
    """Set each dotted path in a copy of ``tree``; a path through a non-section is an error."""
    tree = copy.deepcopy(tree)
    for override in overrides:
        node = tree
        for depth, part in enumerate(override.path[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                walked = ".".join(override.path[: depth + 1])
                raise SpecError(f"{source}: override '{override.text}': '{walked}' is a value, not a section")
            node = child
        node[override.path[-1]] = override.value
    return tree


def retype_overrides(tree: dict[str, Any], overrides: list[Override], model: type[BaseModel], prefix: tuple[str, ...]) -> set[int]:
    """Give string options the override's text as typed; returns the ids of the overrides so settled."""
    settled = set()
    for override in overrides:
        inside = override.path[: len(prefix)] == prefix and len(override.path) > len(prefix)
        if not inside or not override.raw or not _takes_string(model, override.path[len(prefix) :]):
            continue
        settled.add(id(override))
        if override.value is not None and not isinstance(override.value, str):
            _set(tree, override.path, override.raw.strip())
    return settled


def reject_unparsed(overrides: list[Override], settled: set[int], source: str) -> None:
    """YAML that did not parse is fine for a string option only (``settled``: ids of those)."""
    for override in overrides:
        if override.yaml_error and id(override) not in settled:
            raise SpecError(f"{source}: override '{override.text}': value is not valid YAML ({override.yaml_error})")


def _takes_string(model: type[BaseModel], path: tuple[str, ...]) -> bool | None:
    """Whether the option at ``path`` is a string (True), something else (False), or unknown (None)."""
    current: Any = model
    for depth, part in enumerate(path):
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return None
        annotation = fields[part].annotation
        if depth == len(path) - 1:
            return _is_string_type(annotation)
        current = model_in(annotation)
        if current is None:
            return None
    return None


def _is_string_type(annotation: Any) -> bool:
    """``str``, ``str | None``, or a Literal of strings."""
    if annotation is str:
        return True
    origin = typing.get_origin(annotation)
    arguments = [argument for argument in typing.get_args(annotation) if argument is not type(None)]
    if origin is typing.Literal:
        return all(isinstance(argument, str) for argument in arguments)
    if origin in (typing.Union, types.UnionType):
        return bool(arguments) and all(_is_string_type(argument) for argument in arguments)
    return False


def _set(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = tree
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
