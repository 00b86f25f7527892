"""The registry: scenario, model and method entries looked up by name through entry points.

Built-ins register exactly the way third-party packages do (``setup.cfg`` entry points),
so ``pip install some-package`` is all it takes to make a new method appear in ``suite list``.
An entry point's value is a ``ScenarioEntry``, ``ModelEntry`` or ``MethodEntry``
(``suite.api``); "plugin" is kept for Avalanche plugins and for the packages that add entries.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import metadata
from typing import Any

from suite.api import MethodEntry, ModelEntry, ScenarioEntry
from suite.errors import SpecError

BUILTIN_DISTRIBUTION = "cl-suite"
GROUPS = {"scenario": "suite.scenarios", "model": "suite.models", "method": "suite.methods"}
ENTRY_TYPES = {"scenario": ScenarioEntry, "model": ModelEntry, "method": MethodEntry}


@dataclass(frozen=True)
class Registration:
    """One entry point: where a registry entry comes from, before it is imported."""

    kind: str
    name: str
    target: str
    distribution: str
    version: str


def registrations(kind: str) -> dict[str, Registration]:
    """Every registered entry of one kind, by name (first distribution wins on a clash)."""
    return dict(_registrations(kind))


@cache
def _registrations(kind: str) -> tuple[tuple[str, Registration], ...]:
    """Read once per kind: a distribution's name and version come from parsing its METADATA file,
    which every grid point of a spec would otherwise repeat for every installed entry (planning
    ``runs/tune-spoken-coconut.yaml``'s 288 points spent nearly all its time there)."""
    found: dict[str, Registration] = {}
    for entry_point in _entry_points(GROUPS[kind]):
        dist = getattr(entry_point, "dist", None)
        found.setdefault(
            entry_point.name,
            Registration(
                kind=kind,
                name=entry_point.name,
                target=entry_point.value,
                distribution=dist.metadata["Name"] if dist else "?",
                version=dist.version if dist else "?",
            ),
        )
    return tuple(sorted(found.items()))


def get(kind: str, name: str) -> Any:
    """Load the entry ``name`` of ``kind``; an unknown name lists the known ones."""
    known = registrations(kind)
    if name not in known:
        choices = ", ".join(known) or "none registered"
        raise SpecError(f"unknown {kind} '{name}'; known {kind}s: {choices}")
    return _load(kind, name, known[name].target)


def is_builtin(kind: str, name: str) -> bool:
    """Whether the entry ``name`` comes with the suite itself (its own tests vouch for it)."""
    registration = registrations(kind).get(name)
    return registration is not None and registration.distribution == BUILTIN_DISTRIBUTION


def clear_cache() -> None:
    """Forget what was discovered (after a new distribution was put on the path)."""
    _entry_points.cache_clear()
    _registrations.cache_clear()
    _load.cache_clear()


@cache
def _entry_points(group: str) -> tuple[metadata.EntryPoint, ...]:
    return tuple(metadata.entry_points(group=group))


@cache
def _load(kind: str, name: str, target: str) -> Any:
    entry_point = next(ep for ep in _entry_points(GROUPS[kind]) if ep.name == name and ep.value == target)
    try:
        entry = entry_point.load()
    except Exception as error:  # an import failure in a third-party package must name the entry
        raise SpecError(f"{kind} '{name}' ({target}) failed to load: {type(error).__name__}: {error}") from error
    expected = ENTRY_TYPES[kind]
    if not isinstance(entry, expected):
        raise SpecError(f"{kind} '{name}' ({target}) is a {type(entry).__name__}, expected a suite.api.{expected.__name__}")
    return entry
